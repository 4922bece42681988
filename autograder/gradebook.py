"""Scores into nbgrader's gradebook, so ``nbgrader export`` and formgrader show them.

Each rubric part is one nbgrader grade cell (the part's visible-check cell,
worth the part's points); its auto score is the sum of the part's hidden checks.
"""

from __future__ import annotations

import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from autograder.results import SubmissionResult
from autograder.rubric import Rubric

if TYPE_CHECKING:  # nbgrader takes 2 s to import: the writer thread imports it
    from nbgrader.api import Gradebook


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
    from nbgrader.api import MissingEntry

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


def alembic_head() -> str:
    """The schema revision nbgrader stamps on a new gradebook."""
    import nbgrader
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(Path(nbgrader.__file__).parent / "alembic")).get_current_head()


def _stamp_new_database(url: str) -> None:
    """Stamp a new database as nbgrader's Gradebook does, without its ``alembic`` subprocess.

    nbgrader runs the ``alembic heads`` command for every new database, which costs
    seconds of CPU per batch; reading the same head from nbgrader's own migration
    scripts costs milliseconds. An existing database is left alone.
    """
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    try:
        if inspect(engine).get_table_names():
            return
        with engine.begin() as connection:
            connection.execute(
                text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
            )
            connection.execute(
                text("INSERT INTO alembic_version (version_num) VALUES (:head)"),
                {"head": alembic_head()},
            )
    finally:
        engine.dispose()


def open_gradebook(url: str, rubric: Rubric) -> Gradebook:
    from nbgrader.api import Gradebook

    _stamp_new_database(url)
    gradebook = Gradebook(url)
    ensure_assignment(gradebook, rubric)
    return gradebook


class GradebookWriter:
    """The gradebook, owned by one thread so that opening it overlaps grading.

    Opening it imports nbgrader and SQLAlchemy (seconds). Every gradebook operation
    runs in order on the writer's single thread; :meth:`close` waits for them and
    raises the first error, after the results are on disk.
    """

    def __init__(self, url: str, rubric: Rubric) -> None:
        self.rubric = rubric
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gradebook")
        self._book = self._thread.submit(open_gradebook, url, rubric)
        self._done: list[Future] = [self._book]

    def record(self, result: SubmissionResult) -> None:
        self._done.append(self._thread.submit(self._record, result))

    def _record(self, result: SubmissionResult) -> None:
        record(self._book.result(), self.rubric, result)

    def close(self) -> None:
        self._done.append(self._thread.submit(lambda: self._book.result().close()))
        self._thread.shutdown(wait=True)
        for future in self._done:
            future.result()
