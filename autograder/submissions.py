"""Finding submissions: nbgrader's ``submitted/`` tree or a folder of ``<student>.ipynb``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path | None  # None: the student's folder holds no notebook
    problem: str = ""


def discover(root: str | Path, assignment: str, notebook: str) -> list[Submission]:
    """Submissions under ``root``, sorted by student id.

    ``root/<student>/<assignment>/*.ipynb`` (nbgrader) or ``root/<student>.ipynb``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no folder of submissions at {root}")
    found: dict[str, Submission] = {}
    for entry in sorted(root.iterdir()):
        if entry.is_file() and entry.suffix == ".ipynb" and STUDENT_ID.match(entry.stem):
            found[entry.stem] = Submission(entry.stem, entry)
        elif entry.is_dir() and STUDENT_ID.match(entry.name) and (entry / assignment).is_dir():
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
    return [found[key] for key in sorted(found)]
