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
