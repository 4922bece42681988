"""Is feedback informative without revealing the hidden tests or the references?"""

from __future__ import annotations

import re

import pytest

from autograder.mutants import apply_lazy, apply_mutant, edit_cell, load_lazy, load_mutants
from autograder.report import write_feedback
from autograder.rubric import load_rubric

ASSIGNMENT = "m06_02_convolution"
MEASURED = re.compile(r"max abs error [\d.]+e[-+]\d+")


@pytest.fixture(scope="module")
def failing(grade, course):
    source = course.source_notebook(ASSIGNMENT)
    notebooks = {f"m-{m.name}": apply_mutant(source, m) for m in load_mutants(ASSIGNMENT)}
    notebooks.update({f"l-{z.name}": apply_lazy(source, z) for z in load_lazy(ASSIGNMENT)})
    scaled = edit_cell(
        source,
        "conv2d",
        lambda text: (
            text + "\n_conv2d = conv2d\nconv2d = lambda *a, **k: 1.01 * _conv2d(*a, **k)\n"
        ),
    )
    notebooks["scaled"] = scaled
    return grade(ASSIGNMENT, notebooks)


@pytest.mark.slow
def test_feedback_names_the_failed_property_and_error_but_no_hidden_source(
    failing, course, tmp_path
):
    result = failing["m-dilation_ignored"]
    page = write_feedback(
        tmp_path / "feedback.html", result, load_rubric(course.rubric_path(ASSIGNMENT))
    ).read_text()
    failed = next(t for t in result.tests if t.check == "conv2d_dilation")
    assert "dilation=2" in failed.output and re.search(r"(shape|max abs error)", failed.output)
    assert "Hint:" in page and "failed" in page and "18 / 20" in page
    suite = (course.root / "autograder" / "suites" / f"test_{ASSIGNMENT}.py").read_text()
    for line in suite.splitlines():
        line = line.strip()
        if len(line) > 30 and not line.startswith(("#", "from", "import", "def ", "@", '"""')):
            assert line not in page


@pytest.mark.slow
def test_failing_checks_never_show_a_reference_value(failing):
    messages = [t.output for r in failing.values() for t in r.tests if not t.passed]
    assert len(messages) > 20
    for message in messages:
        assert "tensor(" not in message and "array(" not in message, message
        assert "assert" not in message and "check.close" not in message, message
        # what is left after the measured tensor errors: labels and shapes (integers),
        # the rubric's tolerance settings, and the student's own numbers
        assert "allowed" not in message, message
        assert not re.search(r"\d\.\d", MEASURED.sub("", message)), message


def test_checks_csv_has_every_check_per_student_and_scores_do_not_wrap(course, tmp_path):
    import csv

    from autograder.report import write_checks_csv
    from autograder.results import SubmissionResult, TestResult

    rubric = load_rubric(course.rubric_path("m06_02_convolution"))
    tests = [
        TestResult(c.id, c.part, c.id, c.points if i % 2 else 0.0, c.points, bool(i % 2), "")
        for i, c in enumerate(rubric.checks)
    ]
    result = SubmissionResult(
        rubric.assignment, "amy", sum(t.score for t in tests), rubric.total_points, tests
    )
    rows = list(csv.reader(write_checks_csv(tmp_path / "checks.csv", [result], rubric).open()))
    assert rows[0] == ["student", *[c.id for c in rubric.checks]]
    assert rows[1][0] == "amy"
    assert [float(v) for v in rows[1][1:]] == [t.score for t in tests]
    page = write_feedback(tmp_path / "feedback.html", result, rubric).read_text()
    assert "white-space:nowrap" in page and "<td class='num'>" in page
