"""After grading, does nbgrader's own `export` list the scores?"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from autograder.gradebook import open_gradebook, record
from autograder.results import SubmissionResult, TestResult
from autograder.rubric import load_rubric


def result_for(rubric, student: str, passed: set[str]) -> SubmissionResult:
    tests = [
        TestResult(
            c.id, c.part, c.id, c.points if c.id in passed else 0.0, c.points, c.id in passed, ""
        )
        for c in rubric.checks
    ]
    return SubmissionResult(
        rubric.assignment, student, sum(t.score for t in tests), rubric.total_points, tests
    )


def test_nbgrader_export_lists_the_scores(course, tmp_path):
    rubric = load_rubric(course.rubric_path("m06_02_convolution"))
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    book = open_gradebook(url, rubric)
    record(book, rubric, result_for(rubric, "amy", {c.id for c in rubric.checks}))
    record(book, rubric, result_for(rubric, "bo", {"output_size_formula", "conv2d_basic"}))
    record(book, rubric, result_for(rubric, "bo", {"output_size_formula"}))  # a regrade overwrites
    book.close()
    out = tmp_path / "grades.csv"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", "export", f"--db={url}", f"--to={out}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    rows = {row["student_id"]: row for row in csv.DictReader(out.open())}
    assert float(rows["amy"]["score"]) == rubric.total_points
    assert float(rows["bo"]["score"]) == rubric.check("output_size_formula").points
    assert float(rows["bo"]["max_score"]) == rubric.total_points


def test_a_new_gradebook_carries_the_schema_revision_nbgrader_would_stamp(course, tmp_path):
    from nbgrader.api import get_alembic_version
    from sqlalchemy import create_engine, text

    env_path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    os.environ["PATH"], saved = env_path, os.environ["PATH"]
    try:
        expected = get_alembic_version()  # nbgrader's own way: the `alembic heads` command
    finally:
        os.environ["PATH"] = saved
    rubric = load_rubric(course.rubric_path("m06_02_convolution"))
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    open_gradebook(url, rubric).close()
    engine = create_engine(url)
    with engine.connect() as connection:
        stamped = (
            connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        )
    engine.dispose()
    assert stamped == [expected]
    open_gradebook(url, rubric).close()  # reopening an existing gradebook leaves it alone
    with create_engine(url).connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_the_gradebook_writer_keeps_every_record_and_reports_a_bad_database(course, tmp_path):
    from autograder.gradebook import GradebookWriter

    rubric = load_rubric(course.rubric_path("m06_02_convolution"))
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    writer = GradebookWriter(url, rubric)
    for student in ("amy", "bo", "cy"):
        writer.record(result_for(rubric, student, {"output_size_formula"}))
    writer.close()
    book = open_gradebook(url, rubric)
    assert sorted(s.id for s in book.students) == ["amy", "bo", "cy"]
    book.close()
    bad = GradebookWriter(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'gradebook.db'}", rubric)
    bad.record(result_for(rubric, "amy", set()))
    try:
        bad.close()
    except Exception as exc:  # the opening error, raised once grading is done
        assert "unable to open database" in str(exc)
    else:
        raise AssertionError("a gradebook that cannot be opened must be reported")
