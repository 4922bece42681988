"""Scores into nbgrader's gradebook, so ``nbgrader export`` and formgrader show them.

Each rubric part is one nbgrader grade cell (the part's visible-check cell,
worth the part's points); its auto score is the sum of the part's hidden checks.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
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


def notebook_cells(path: Path) -> list[dict]:
    """The nbgrader cells of the released notebook (trusted: the course's own file)."""
    cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    found = []
    for cell in cells:
        meta = (cell.get("metadata") or {}).get("nbgrader") or {}
        if meta.get("grade_id"):
            source = cell.get("source", "")
            found.append(
                {
                    "grade_id": meta["grade_id"],
                    "cell_type": cell.get("cell_type", "code"),
                    "grade": bool(meta.get("grade")),
                    "solution": bool(meta.get("solution")),
                    "task": bool(meta.get("task")),
                    "locked": bool(meta.get("locked")),
                    "points": float(meta.get("points") or 0),
                    "checksum": meta.get("checksum"),
                    "source": "".join(source) if isinstance(source, list) else source,
                }
            )
    return found


def ensure_assignment(
    gradebook: Gradebook,
    rubric: Rubric,
    cells: list[dict] | None = None,
    duedate: datetime.datetime | None = None,
) -> None:
    """Create the assignment, its notebook and cells as ``nbgrader generate_assignment`` would.

    ``cells`` (from :func:`notebook_cells`) registers every grade, solution, task
    and read-only cell, so formgrader and ``generate_feedback`` find the rows they
    expect; without it only the rubric's grade cells are registered. A due date
    from the course configuration is written to the assignment.
    """
    extra = {"duedate": duedate} if duedate is not None else {}
    gradebook.update_or_create_assignment(rubric.assignment, **extra)
    name = notebook_name(rubric)
    gradebook.update_or_create_notebook(name, rubric.assignment)
    points = {part.check_cell: part.points for part in rubric.parts}
    for cell in cells or []:
        gid = cell["grade_id"]
        if cell["grade"]:
            gradebook.update_or_create_grade_cell(
                gid,
                name,
                rubric.assignment,
                max_score=points.get(gid, cell["points"]),
                cell_type=cell["cell_type"],
            )
        if cell["solution"]:
            gradebook.update_or_create_solution_cell(gid, name, rubric.assignment)
        if cell["task"]:
            gradebook.update_or_create_task_cell(
                gid, name, rubric.assignment, max_score=cell["points"], cell_type="markdown"
            )
        if cell["grade"] or cell["solution"] or cell["locked"] or cell["task"]:
            gradebook.update_or_create_source_cell(
                gid,
                name,
                rubric.assignment,
                cell_type=cell["cell_type"],
                locked=cell["locked"],
                source=cell["source"],
                checksum=cell["checksum"],
            )
    for part in rubric.parts:
        gradebook.update_or_create_grade_cell(
            part.check_cell, name, rubric.assignment, max_score=part.points, cell_type="code"
        )


def _complete(gradebook: Gradebook, submission) -> None:
    """Grade and comment rows for cells added after the submission was created."""
    from nbgrader.api import Comment, Grade

    for notebook in submission.notebooks:
        graded = {grade.cell_id for grade in notebook.grades}
        commented = {comment.cell_id for comment in notebook.comments}
        for cell in list(notebook.notebook.grade_cells) + list(notebook.notebook.task_cells):
            if cell.id not in graded:
                gradebook.db.add(Grade(cell_id=cell.id, notebook=notebook))
        for cell in list(notebook.notebook.solution_cells) + list(notebook.notebook.task_cells):
            if cell.id not in commented:
                gradebook.db.add(Comment(cell_id=cell.id, notebook=notebook))


def open_submission(gradebook: Gradebook, rubric: Rubric, student: str, timestamp=None):
    """The student's submission row (created with every cell's grade and comment)."""
    from nbgrader.api import MissingEntry

    gradebook.update_or_create_student(student)
    try:
        submission = gradebook.find_submission(rubric.assignment, student)
    except MissingEntry:
        with warnings.catch_warnings():  # nbgrader's own autoflush warnings, harmless
            warnings.simplefilter("ignore")
            submission = gradebook.add_submission(rubric.assignment, student)
    _complete(gradebook, submission)
    submission.timestamp = timestamp
    gradebook.db.commit()
    return submission


def seconds_late(gradebook: Gradebook, rubric: Rubric, student: str, timestamp) -> float:
    """Store the submission time; nbgrader's own lateness (extensions included)."""
    submission = open_submission(gradebook, rubric, student, timestamp)
    return float(submission.total_seconds_late)


def comment_text(tests: list) -> str:
    """What the hidden checks of one part found, for the answer cell's comment."""
    passed = sum(t.passed for t in tests)
    lines = [f"Hidden checks: {passed} of {len(tests)} passed."]
    for test in tests:
        mark = "passed" if test.passed else "FAILED"
        line = f"- {mark} ({test.score:g}/{test.max_score:g}) {test.name}"
        if not test.passed and test.output:
            line += f": {test.output[:600]}"
        lines.append(line)
    return "\n".join(lines)


def record(
    gradebook: Gradebook,
    rubric: Rubric,
    result: SubmissionResult,
    timestamp=None,
    late_penalty: float | None = None,
) -> None:
    """Store one student's part scores, comments and late penalty (re-recording overwrites).

    Only the auto scores and auto comments are written: a TA's manual score or
    comment in formgrader stays.
    """
    submission = open_submission(gradebook, rubric, result.student, timestamp)
    name = notebook_name(rubric)
    for part in rubric.parts:
        tests = [t for t in result.tests if t.part == part.id]
        grade = gradebook.find_grade(part.check_cell, name, rubric.assignment, result.student)
        grade.auto_score = sum(t.score for t in tests)
        grade.needs_manual_grade = False
        try:
            comment = gradebook.find_comment(
                part.answer_cell, name, rubric.assignment, result.student
            )
        except Exception:  # the answer cell is no solution cell in this gradebook
            continue
        comment.auto_comment = comment_text(tests) if tests else result.fatal or ""
    notebook = next(nb for nb in submission.notebooks if nb.name == name)
    notebook.late_submission_penalty = late_penalty or None
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


def open_gradebook(
    url: str,
    rubric: Rubric,
    notebook: Path | None = None,
    duedate: datetime.datetime | None = None,
) -> Gradebook:
    from autograder.config import import_nbgrader

    Gradebook = import_nbgrader("nbgrader.api").Gradebook
    _stamp_new_database(url)
    gradebook = Gradebook(url)
    ensure_assignment(gradebook, rubric, notebook_cells(notebook) if notebook else None, duedate)
    return gradebook


def _yield_cpu() -> None:
    """The writer thread runs at a lower priority: while a grade starts, the sandbox
    worker's imports are what everything waits for, and this can run beside them."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (OSError, AttributeError):
        pass


class GradebookWriter:
    """The gradebook, owned by one thread so that opening it overlaps grading.

    Opening it imports nbgrader and SQLAlchemy (seconds). Every gradebook operation
    runs in order on the writer's single thread; :meth:`close` waits for them and
    raises the first error, after the results are on disk.
    """

    def __init__(
        self,
        url: str,
        rubric: Rubric,
        notebook: Path | None = None,
        duedate: datetime.datetime | None = None,
    ) -> None:
        self.rubric = rubric
        self._thread = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="gradebook", initializer=_yield_cpu
        )
        self._book = self._thread.submit(open_gradebook, url, rubric, notebook, duedate)
        self._done: list[Future] = [self._book]

    def record(self, result: SubmissionResult, timestamp=None, late_penalty=None) -> None:
        self._done.append(self._thread.submit(self._record, result, timestamp, late_penalty))

    def _record(self, result: SubmissionResult, timestamp, late_penalty) -> None:
        record(self._book.result(), self.rubric, result, timestamp, late_penalty)

    def seconds_late(self, student: str, timestamp) -> float:
        """nbgrader's lateness of this submission (waits for the gradebook)."""
        return self._thread.submit(
            lambda: seconds_late(self._book.result(), self.rubric, student, timestamp)
        ).result()

    def close(self) -> None:
        self._done.append(self._thread.submit(lambda: self._book.result().close()))
        self._thread.shutdown(wait=True)
        for future in self._done:
            future.result()
