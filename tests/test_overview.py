"""The course overview: totals, who needs help, LMS columns, links, escaping, bad input."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from autograder import cli
from autograder.course import Course
from autograder.overview import write_overview
from autograder.results import SubmissionResult, TestResult, write_json_atomic
from autograder.rubric import load_rubric

COURSE = Course.here()
HOSTILE = "x<img src=x onerror=alert(1)>"  # ids this odd never grade, but a file can be edited


def graded_folder(root: Path, assignment: str, scores: dict[str, list[bool]], penalty=None) -> Path:
    """A `grade --out` folder with results for ``{student: passed per check}``."""
    rubric = load_rubric(COURSE.rubric_path(assignment))
    folder = root / assignment
    for student, passed in scores.items():
        tests = [
            TestResult(c.id, c.part, c.description, c.points if ok else 0.0, c.points, ok, "")
            for c, ok in zip(rubric.checks, passed)
        ]
        result = SubmissionResult(
            assignment, student, sum(t.score for t in tests), rubric.total_points, tests
        )
        result.late_penalty = (penalty or {}).get(student, 0.0)
        write_json_atomic(folder / student / "results.json", result.to_gradescope())
        (folder / student / "feedback.html").write_text("feedback")
    (folder / "report.html").write_text("report")
    return folder


@pytest.fixture
def course_dirs(tmp_path):
    conv = load_rubric(COURSE.rubric_path("m06_02_convolution"))
    adv = load_rubric(COURSE.rubric_path("m06_10_adversarial"))
    n, m = len(conv.checks), len(adv.checks)
    first = graded_folder(
        tmp_path / "graded",
        "m06_02_convolution",
        {"ann": [True] * n, "bob": [False, False] + [True] * (n - 2), "cat": [False] * n},
        penalty={"ann": 5.0},
    )
    second = graded_folder(
        tmp_path / "graded", "m06_10_adversarial", {"ann": [True] * m, "bob": [True] * m}
    )
    from nbgrader.api import Gradebook

    from autograder.gradebook import _stamp_new_database

    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    _stamp_new_database(url)  # as grade creates one (nbgrader's own would run `alembic`)
    with Gradebook(url) as book:
        book.update_or_create_student("ann", first_name="Ann", last_name="Lee", email="ann@uni.edu")
    return tmp_path, [first, second], url, conv, adv


def test_totals_csv_and_lms_columns(course_dirs):
    root, dirs, url, conv, adv = course_dirs
    paths = write_overview(dirs, root / "out", gradebook=url)
    rows = {r["student_id"]: r for r in csv.DictReader(paths["csv"].open())}
    total = conv.total_points + adv.total_points
    assert rows["ann"]["name"] == "Ann Lee" and rows["ann"]["email"] == "ann@uni.edu"
    assert float(rows["ann"]["total"]) == total - 5  # after the late penalty
    assert rows["cat"]["m06_10_adversarial"] == "" and float(rows["cat"]["total"]) == 0
    assert float(rows["bob"]["max_total"]) == total
    first = conv.checks[0]
    assert float(rows["bob"][f"m06_02_convolution:{first.id}"]) == 0
    assert float(rows["ann"][f"m06_02_convolution:{first.id}"]) == first.points


def test_the_page_flags_who_needs_help_and_links_every_page(course_dirs):
    root, dirs, url, conv, _ = course_dirs
    out = root / "out"
    page = write_overview(dirs, out, gradebook=url)["overview"].read_text()
    help_section = page[page.index("Who needs help") : page.index("<h2>Students")]
    assert "cat" in help_section and "no submission for m06_10_adversarial" in help_section
    assert "ann" not in help_section
    # cat failed every check, so several of one part: a concept to revisit
    assert re.search(r"m06_02_convolution: \d+ checks of &#x27;.+?&#x27; failed", help_section)
    for href in re.findall(r"href='([^']+)'", page):
        assert (out / href).resolve().is_file(), href
    assert page.count("data:image/png;base64") == 2
    assert "white-space:nowrap" in page


def test_student_ids_are_escaped(tmp_path):
    folder = graded_folder(tmp_path, "m06_02_convolution", {HOSTILE: [True] * 20})
    page = write_overview([folder], tmp_path / "out")["overview"].read_text()
    assert "<img src=x" not in page and "&lt;img src=x" in page


def test_bad_input_is_one_clear_error(tmp_path, capsys, course_dirs):
    root, dirs, *_ = course_dirs
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no graded submissions"):
        write_overview([empty], tmp_path / "o")
    with pytest.raises(ValueError, match="give one folder per assignment"):
        write_overview([dirs[0], dirs[0]], tmp_path / "o")
    assert cli.main(["overview", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_an_unreadable_result_is_named_not_fatal(course_dirs):
    root, dirs, *_ = course_dirs
    (dirs[0] / "dan").mkdir()
    (dirs[0] / "dan" / "results.json").write_text("{broken")
    page = write_overview(dirs, root / "out")["overview"].read_text()
    assert "Not read:" in page and "dan" in page
