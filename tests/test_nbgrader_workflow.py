"""nbgrader's own tools on a course graded by ``python -m autograder grade``.

A temporary course (the repository's folders linked in, its own
``nbgrader_config.py``) is graded from another directory with ``--course``;
then nbgrader's gradebook, ``generate_feedback``, ``autograde`` and the API
behind formgrader are asked what they see.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.course import Course

ASSIGNMENT = "m06_02_convolution"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
CONFIG = """\
c = get_config()
c.CourseDirectory.course_id = "test-course"
c.CourseDirectory.root = "."
c.CourseDirectory.db_url = "sqlite:///gradebook.db"
c.Autograder.due_dates = {"m06_02_convolution": "2026-11-01 12:00:00 UTC"}
c.LateSubmissionPlugin.penalty_method = "zero"
c.Execute.timeout = 120
"""


def make_course(root: Path) -> Path:
    repo = Course.here().root
    for name in ("source", "release", "rubrics", "autograder", "solutions"):
        (root / name).symlink_to(repo / name)
    (root / "nbgrader_config.py").write_text(CONFIG)
    return root


def submit(root: Path, student: str, notebook: Path, timestamp: str | None) -> None:
    folder = root / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    (folder / NOTEBOOK).write_bytes(notebook.read_bytes())
    if timestamp is not None:
        (folder / "timestamp.txt").write_text(timestamp + "\n")


def autograder(root: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "autograder", "--course", str(root), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


def nbgrader(root: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "nbgrader", *args, "--log-level=INFO"]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = make_course(tmp_path_factory.mktemp("course"))
    course = Course.here()
    submit(root, "ann", course.source_notebook(ASSIGNMENT), "2026-11-01 11:00:00 UTC")
    submit(root, "bob", course.source_notebook(ASSIGNMENT), "2026-11-02 22:00:00 UTC")
    submit(root, "cat", course.release_notebook(ASSIGNMENT), None)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    done = autograder(
        root, "grade", ASSIGNMENT, str(root / "submitted"), "--out", "out", "--no-progress",
        cwd=elsewhere,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return root, elsewhere / "out", done


@pytest.mark.slow
def test_grade_writes_the_course_gradebook_with_due_dates_and_late_penalties(graded):
    from nbgrader.api import Gradebook

    root, out, done = graded
    assert not (out / "gradebook.db").exists()  # the course's gradebook, not one under --out
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as book:
        assert str(book.find_assignment(ASSIGNMENT).duedate) == "2026-11-01 12:00:00"
        ann = book.find_submission(ASSIGNMENT, "ann")
        bob = book.find_submission(ASSIGNMENT, "bob")
        cat = book.find_submission(ASSIGNMENT, "cat")
        full = ann.max_score
        assert (ann.score, ann.total_seconds_late, ann.late_submission_penalty) == (full, 0, 0)
        assert bob.total_seconds_late == 34 * 3600
        assert bob.score == full and bob.late_submission_penalty == full  # penalty method 'zero'
        assert cat.score == 0 and cat.timestamp is None
        # the hidden checks' messages are the answer cells' comments
        comments = [c.auto_comment for c in cat.notebooks[0].comments if c.auto_comment]
        assert comments and all("Hidden checks: 0 of" in text for text in comments)
    bob_results = json.loads((out / "bob" / "results.json").read_text())
    assert "34.0 h after the due date: late penalty" in bob_results["output"]
    assert bob_results["extra_data"]["late_penalty"] == full
    import csv

    rows = {row["student"]: row for row in csv.DictReader((out / "grades.csv").open())}
    assert rows["bob"]["late_penalty"] == f"{full:g}" and rows["bob"]["final"] == "0"
    assert rows["ann"]["late_penalty"] == "0" and rows["ann"]["final"] == f"{full:g}"


@pytest.mark.slow
def test_generate_feedback_and_formgrader_see_the_autograded_notebooks(graded):
    root, _, _ = graded
    for student in ("ann", "bob", "cat"):
        notebook = json.loads((root / "autograded" / student / ASSIGNMENT / NOTEBOOK).read_text())
        assert notebook["metadata"]["autograder"]["graded_by"]
    done = nbgrader(root, "generate_feedback", ASSIGNMENT)
    assert done.returncode == 0, done.stdout + done.stderr
    page = (root / "feedback" / "cat" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "Hidden checks: 0 of" in page and "Score: 0.0" in page
    page = (root / "feedback" / "ann" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "Hidden checks:" in page and "FAILED" not in page

    # formgrader's pages are built from NbGraderAPI
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    config = Config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    rows = {row["student"]: row for row in api.get_notebook_submissions(ASSIGNMENT, ASSIGNMENT)}
    assert set(rows) == {"ann", "bob", "cat"}  # formgrader's manual-grading list
    assert rows["cat"]["score"] == 0 and rows["ann"]["score"] == rows["ann"]["max_score"]
    submission = api.get_submission(ASSIGNMENT, "cat")
    assert submission["autograded"] and submission["needs_manual_grade"] is False


@pytest.mark.slow
def test_autograde_and_grade_refuse_to_replace_each_other(graded):
    root, out, _ = graded
    before = (root / "autograded" / "ann" / ASSIGNMENT / NOTEBOOK).read_bytes()
    done = nbgrader(root, "autograde", ASSIGNMENT)
    assert "Skipping existing assignment" in done.stdout + done.stderr
    assert (root / "autograded" / "ann" / ASSIGNMENT / NOTEBOOK).read_bytes() == before

    # a student nbgrader autograde graded first: grade refuses without --force
    course = Course.here()
    submit(root, "dan", course.release_notebook(ASSIGNMENT), None)
    theirs = root / "autograded" / "dan" / ASSIGNMENT
    theirs.mkdir(parents=True)
    (theirs / NOTEBOOK).write_bytes(course.release_notebook(ASSIGNMENT).read_bytes())
    args = ["grade", ASSIGNMENT, str(root / "submitted"), "--out", str(out), "--no-progress"]
    refused = autograder(root, *args, cwd=root)
    assert refused.returncode == 2
    assert "nbgrader autograde has already graded dan" in refused.stderr
    assert "Traceback" not in refused.stderr
    forced = autograder(root, *args, "--force", cwd=root)
    assert forced.returncode == 0, forced.stderr
    notebook = json.loads((theirs / NOTEBOOK).read_text())
    assert "autograder" in notebook["metadata"]
