"""The autograded notebook: trusted structure, the student's code, the checks' outcomes."""

from __future__ import annotations

import json

from autograder.autograded import MARK, build, owner, write
from autograder.course import Course
from autograder.results import SubmissionResult, TestResult
from autograder.rubric import load_rubric

ASSIGNMENT = "m06_02_convolution"
COURSE = Course.here()
RUBRIC = load_rubric(COURSE.rubric_path(ASSIGNMENT))
RELEASE = json.loads(COURSE.release_notebook(ASSIGNMENT).read_text())


def result(passed: bool) -> SubmissionResult:
    tests = [
        TestResult(
            c.id,
            c.part,
            c.description,
            c.points if passed else 0,
            c.points,
            passed,
            "" if passed else "max abs error 0.3",
        )
        for c in RUBRIC.checks
    ]
    return SubmissionResult(
        ASSIGNMENT, "amy", sum(t.score for t in tests), RUBRIC.total_points, tests
    )


def cells_by_id(notebook: dict) -> dict:
    return {
        c["metadata"]["nbgrader"]["grade_id"]: c
        for c in notebook["cells"]
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    }


def test_answers_and_added_cells_are_kept_and_check_cells_show_the_hidden_checks():
    student = json.loads(COURSE.source_notebook(ASSIGNMENT).read_text())
    part = RUBRIC.parts[0]
    answer = next(
        i for i, c in enumerate(student["cells"])
        if c["metadata"].get("nbgrader", {}).get("grade_id") == part.answer_cell
    )  # fmt: skip
    student["cells"].insert(
        answer + 1,
        {
            "cell_type": "code",
            "metadata": {},
            "source": "def helper():\n    return 1\n",
            "outputs": [],
            "execution_count": None,
        },
    )
    check = next(
        c
        for c in student["cells"]
        if c["metadata"].get("nbgrader", {}).get("grade_id") == part.check_cell
    )
    check["source"] = "assert True  # the student's edit of a locked check cell"
    check["outputs"] = [
        {
            "output_type": "display_data",
            "data": {"text/html": "<script>alert(1)</script>"},
            "metadata": {},
        }
    ]
    notebook = build(RELEASE, json.dumps(student).encode(), result(False), RUBRIC)
    cells = cells_by_id(notebook)
    source = "".join(cells[part.answer_cell]["source"])
    assert source == "".join(student["cells"][answer]["source"])
    assert "def helper" in "".join("".join(c["source"]) for c in notebook["cells"])
    released = cells_by_id(RELEASE)[part.check_cell]["source"]
    assert cells[part.check_cell]["source"] == released  # the trusted check cell, not the edit
    text = cells[part.check_cell]["outputs"][0]["text"]
    assert text.startswith("Hidden checks: 0 of") and "max abs error 0.3" in " ".join(text.split())
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "<script>" not in json.dumps(notebook)  # the student's saved outputs are dropped
    assert notebook["metadata"][MARK]["score"] == 0


def test_an_unreadable_submission_still_gets_a_notebook_that_says_so():
    bad = result(False)
    bad.fatal = "the submission is not valid JSON"
    notebook = build(RELEASE, b"{not json", bad, RUBRIC)
    assert "submission_unreadable" in notebook["metadata"][MARK]
    assert len(cells_by_id(notebook)) == len(cells_by_id(RELEASE))


def test_owner_tells_our_folders_from_nbgrader_autograde(tmp_path):
    assert owner(tmp_path / "missing", "x.ipynb") is None
    ours = write(tmp_path / "ours", "x.ipynb", build(RELEASE, None, result(True), RUBRIC))
    assert owner(ours.parent, "x.ipynb") == "autograder"
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "x.ipynb").write_text(json.dumps(RELEASE))
    assert owner(theirs, "x.ipynb") == "nbgrader"
    (theirs / "x.ipynb").write_text("garbage")
    assert owner(theirs, "x.ipynb") == "nbgrader"


def test_a_submission_with_lone_surrogates_is_written_as_valid_utf8(tmp_path):
    student = json.loads(COURSE.source_notebook(ASSIGNMENT).read_text())
    student["cells"].append({"cell_type": "code", "metadata": {}, "source": "x = '\ud800'"})
    raw = json.dumps(student).encode()  # ensure_ascii: the surrogate travels as an escape
    path = write(tmp_path, "x.ipynb", build(RELEASE, raw, result(True), RUBRIC))
    assert "x = '" in path.read_text(encoding="utf-8")
