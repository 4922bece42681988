"""Finding submissions: nbgrader's ``submitted/`` tree or a folder of ``<student>.ipynb``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
# Names the grader writes beside the per-student folders: a student id may not take them.
RESERVED = {"grades.csv", "report.html", "gradebook.db", "gradebook.db-journal", "checks.csv"}


def id_problem(student: str) -> str | None:
    """Why ``student`` cannot be a student id (it names their output folder), or None."""
    if not STUDENT_ID.match(student):
        return (
            f"'{student}' is not a valid student id (letters, digits and . _ @ + -, "
            "starting with a letter or digit); rename it to grade it"
        )
    if student.lower() in RESERVED:
        return f"'{student}' collides with the grader's output file of that name; rename it to grade it"
    return None


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path | None  # None: the student's folder holds no notebook
    problem: str = ""


def discover(
    root: str | Path, assignment: str, notebook: str
) -> tuple[list[Submission], list[str]]:
    """Submissions under ``root``, sorted by student id, and what could not be taken.

    ``root/<student>/<assignment>/*.ipynb`` (nbgrader) or ``root/<student>.ipynb``.
    A file or folder whose name is no valid student id is named in the problems,
    never graded under that name.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no folder of submissions at {root}")
    found: dict[str, Submission] = {}
    problems: list[str] = []
    for entry in sorted(root.iterdir()):
        student = entry.stem if entry.is_file() else entry.name
        is_submission = (entry.is_file() and entry.suffix == ".ipynb") or (
            entry.is_dir() and (entry / assignment).is_dir()
        )
        if is_submission and id_problem(student):
            problems.append(f"{entry.name}: not graded: {id_problem(student)}")
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            found[entry.stem] = Submission(entry.stem, entry)
        elif entry.is_dir() and (entry / assignment).is_dir():
            folder = entry / assignment
            preferred = folder / notebook
            notebooks = sorted(folder.glob("*.ipynb"))
            if preferred.is_file():
                found[entry.name] = Submission(entry.name, preferred)
            elif len(notebooks) == 1:
                found[entry.name] = Submission(
                    entry.name,
                    notebooks[0],
                    f"notebook named {notebooks[0].name} instead of {notebook}",
                )
            elif notebooks:
                names = ", ".join(n.name for n in notebooks)
                found[entry.name] = Submission(
                    entry.name, None, f"several notebooks ({names}) and none named {notebook}"
                )
            else:
                found[entry.name] = Submission(entry.name, None, f"no notebook in {folder.name}/")
    return [found[key] for key in sorted(found)], problems
