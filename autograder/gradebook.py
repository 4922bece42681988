"""Scores into nbgrader's gradebook, so ``nbgrader export`` and formgrader show them.

Each rubric part is one nbgrader grade cell (the part's visible-check cell,
worth the part's points); its auto score is the sum of the part's hidden checks.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from autograder.results import SubmissionResult
from autograder.rubric import Rubric


def notebook_name(rubric: Rubric) -> str:
    return rubric.notebook.removesuffix(".ipynb")


def ensure_assignment(gradebook: Gradebook, rubric: Rubric) -> None:
    """Create the assignment, its notebook and grade cells if the gradebook lacks them."""
    gradebook.update_or_create_assignment(rubric.assignment)
    name = notebook_name(rubric)
    gradebook.update_or_create_notebook(name, rubric.assignment)
    for part in rubric.parts:
        gradebook.update_or_create_grade_cell(
            part.check_cell, name, rubric.assignment, max_score=part.points, cell_type="code"
        )


def record(gradebook: Gradebook, rubric: Rubric, result: SubmissionResult) -> None:
    """Store one student's part scores (idempotent: re-recording overwrites)."""
    gradebook.update_or_create_student(result.student)
    try:
        gradebook.find_submission(rubric.assignment, result.student)
    except MissingEntry:
        with warnings.catch_warnings():  # nbgrader's own autoflush warnings, harmless
            warnings.simplefilter("ignore")
            gradebook.add_submission(rubric.assignment, result.student)
    name = notebook_name(rubric)
    for part in rubric.parts:
        score = sum(t.score for t in result.tests if t.part == part.id)
        grade = gradebook.find_grade(part.check_cell, name, rubric.assignment, result.student)
        grade.auto_score = score
        grade.needs_manual_grade = False
    gradebook.db.commit()


def open_gradebook(url: str, rubric: Rubric) -> Gradebook:
    # nbgrader runs the `alembic` command when it creates a database: make sure the
    # one installed beside this interpreter is found even if the venv is not activated.
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    gradebook = Gradebook(url)
    ensure_assignment(gradebook, rubric)
    return gradebook
