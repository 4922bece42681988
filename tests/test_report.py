"""Is feedback informative without revealing the hidden tests or the references?"""

from __future__ import annotations

import re

from autograder.mutants import apply_mutant, load_mutants
from autograder.report import write_feedback
from autograder.rubric import load_rubric

ASSIGNMENT = "m06_02_convolution"


def test_feedback_names_the_failed_property_and_error_but_no_hidden_source(kit, course, tmp_path):
    bug = next(m for m in load_mutants(ASSIGNMENT) if m.name == "dilation_ignored")
    result = kit.grade(ASSIGNMENT, apply_mutant(course.source_notebook(ASSIGNMENT), bug), "bob")
    page = write_feedback(
        tmp_path / "feedback.html", result, load_rubric(course.rubric_path(ASSIGNMENT))
    ).read_text()
    failed = next(t for t in result.tests if t.check == "conv2d_dilation")
    assert "dilation=2" in failed.output and re.search(r"(shape|max abs error)", failed.output)
    assert "Hint:" in page and "failed" in page and "18 / 20" in page
    suite = (course.root / "autograder" / "suites" / f"{ASSIGNMENT}.py").read_text()
    for line in suite.splitlines():
        line = line.strip()
        if len(line) > 30 and not line.startswith(("#", "from", "import", "def ", "@", '"""')):
            assert line not in page
    assert "tensor(" not in page and "array(" not in page
