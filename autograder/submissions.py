"""Finding submissions: nbgrader's ``submitted/`` tree or a folder of ``<student>.ipynb``."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
# Names the grader writes beside the per-student folders: a student id may not take them.
RESERVED = {
    "grades.csv",
    "report.html",
    "gradebook.db",
    "gradebook.db-journal",
    "checks.csv",
    "autograded",
}


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


# Canvas: <login>[_LATE]_<user id>_<submission id>_<original file name>
CANVAS_NAME = re.compile(r"^(?P<login>[A-Za-z0-9][A-Za-z0-9.@+-]*?)(?:_LATE)?_\d+_\d+_.+$")
BROWSER_COPY = re.compile(r"\s*\(\d+\)$")  # "name (1)": a second download of the same file


def flat_student_id(stem: str, assignment: str, notebook: str) -> tuple[str | None, str]:
    """The student id a downloaded ``<stem>.ipynb`` stands for, and how it was read.

    The rule (README, "Grading a folder of LMS downloads"): a browser's " (1)" is
    dropped; a Canvas name ``login[_LATE]_123_456_file`` gives ``login``; runs of
    spaces become ``_`` (``Jane Doe`` -> ``Jane_Doe``). A name that is only the
    assignment's or the notebook's carries no student and is not graded.
    """
    name = BROWSER_COPY.sub("", stem.strip())
    canvas = CANVAS_NAME.match(name)
    if canvas:
        return canvas["login"], f"Canvas download name, read as '{canvas['login']}'"
    if name.lower() in {assignment.lower(), notebook.lower().removesuffix(".ipynb")}:
        return None, "the file name names the assignment, not a student"
    student = re.sub(r"\s+", "_", name)
    how = "" if student == stem else f"file name '{stem}' read as '{student}'"
    return student, how


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path | None  # None: the student's folder holds no notebook
    problem: str = ""
    folder: Path | None = None  # nbgrader's submitted/<student>/<id>/ (its timestamp.txt)
    weights: Path | None = None  # the weights file beside the notebook, where the rubric asks


def submission_sha(notebook: bytes, weights: Path | None = None) -> str:
    """What identifies one graded submission: its notebook, and its weights file if any
    (a regrade reuses a result only when both are unchanged)."""
    digest = hashlib.sha256(notebook)
    if weights is not None:
        try:
            with open(weights, "rb") as handle:
                inner = hashlib.file_digest(handle, "sha256").digest()
        except OSError:
            inner = b"unreadable"
        digest.update(b"\0weights\0" + inner)
    return digest.hexdigest()


def weights_beside(notebook: Path, file: str) -> Path | None:
    """The weights file submitted with ``notebook``: ``<folder>/<file>`` (nbgrader, Gradescope)
    or ``<stem><suffix>`` beside it (a flat folder); None when there is neither."""
    suffix = Path(file).suffix or ".pt"
    for candidate in (notebook.with_suffix(suffix), notebook.parent / file):
        if candidate.is_file():
            return candidate
    return None


def discover(
    root: str | Path, assignment: str, notebook: str, weights: str | None = None
) -> tuple[list[Submission], list[str]]:
    """Submissions under ``root``, sorted by student id, and what could not be taken.

    ``root/<student>/<assignment>/*.ipynb`` (nbgrader) or ``root/<student>.ipynb``
    (file names from an LMS download are read by :func:`flat_student_id`).
    A file or folder whose name is no valid student id is named in the problems,
    never graded under that name. With ``weights`` (the rubric's file name, e.g.
    ``model.pt``), each submission also gets its weights file:
    ``root/<student>/<assignment>/model.pt``, or in a flat folder a ``.pt`` file whose
    name reads as the same student (``jdoe.pt``, a Canvas ``jdoe_12_34_model.pt``).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no folder of submissions at {root}")
    found: dict[str, Submission] = {}
    problems: list[str] = []
    claimed: dict[str, list[str]] = {}
    for entry in sorted(root.iterdir()):
        if entry.is_file() and entry.suffix.lower() == ".ipynb":
            student, how = flat_student_id(entry.stem, assignment, notebook)
            if student is None:
                problems.append(f"{entry.name}: not graded: {how}; rename it to the student's id")
            elif id_problem(student):
                problems.append(f"{entry.name}: not graded: {id_problem(student)}")
            else:
                claimed.setdefault(student, []).append(entry.name)
                found[student] = Submission(student, entry, how)
            continue
        student = entry.name
        if entry.is_dir() and (entry / assignment).is_dir():
            if id_problem(student):
                problems.append(f"{entry.name}: not graded: {id_problem(student)}")
                continue
            claimed.setdefault(student, []).append(f"{entry.name}/")
        if entry.is_dir() and (entry / assignment).is_dir():
            folder = entry / assignment
            preferred = folder / notebook
            notebooks = sorted(folder.glob("*.ipynb"))
            if preferred.is_file():
                found[entry.name] = Submission(entry.name, preferred, folder=folder)
            elif len(notebooks) == 1:
                found[entry.name] = Submission(
                    entry.name,
                    notebooks[0],
                    f"notebook named {notebooks[0].name} instead of {notebook}",
                    folder=folder,
                )
            elif notebooks:
                names = ", ".join(n.name for n in notebooks)
                found[entry.name] = Submission(
                    entry.name,
                    None,
                    f"several notebooks ({names}) and none named {notebook}",
                    folder=folder,
                )
            else:
                found[entry.name] = Submission(
                    entry.name, None, f"no notebook in {folder.name}/", folder=folder
                )
    if weights is not None:
        _attach_weights(root, found, problems, assignment, notebook, weights)
    for student, names in claimed.items():
        if len(names) > 1:
            del found[student]
            listed = ", ".join(sorted(names))
            problems.append(
                f"{listed}: not graded: these files all read as student '{student}'; "
                "keep one (or rename them) and grade again"
            )
    return [found[key] for key in sorted(found)], problems


def _attach_weights(
    root: Path,
    found: dict[str, Submission],
    problems: list[str],
    assignment: str,
    notebook: str,
    file: str,
) -> None:
    """Give each submission its weights file; name flat weights files that match no notebook."""
    suffix = Path(file).suffix.lower() or ".pt"
    flat: dict[str, list[Path]] = {}
    for entry in sorted(root.iterdir()):
        if entry.is_file() and entry.suffix.lower() == suffix:
            student, _ = flat_student_id(entry.stem, assignment, notebook)
            if student is None or student not in found or found[student].folder is not None:
                problems.append(
                    f"{entry.name}: a weights file with no notebook of the same student"
                )
                continue
            flat.setdefault(student, []).append(entry)
    for student, submission in list(found.items()):
        if submission.folder is not None:
            path = submission.folder / file
            found[student] = replace(submission, weights=path if path.is_file() else None)
        elif student in flat:
            files = flat[student]
            if len(files) > 1:
                names = ", ".join(f.name for f in files)
                problems.append(f"{names}: several weights files for '{student}'; none was used")
            else:
                found[student] = replace(submission, weights=files[0])
