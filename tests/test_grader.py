"""Does one submission get a full, explained result whatever state it is in?"""

from __future__ import annotations

import json

from autograder.grader import AssignmentGrader

ASSIGNMENT = "m06_02_convolution"


def test_probes_are_flattened_in_rubric_order_with_limits(course):
    grader = AssignmentGrader(course, ASSIGNMENT)
    checks = [c.id for c in grader.rubric.checks]
    assert list(grader.first_index) == checks
    assert sorted(grader.first_index.values()) == list(grader.first_index.values())
    first = grader.probes[grader.first_index["conv2d_basic"]]
    assert first["function"] == "conv2d" and first["trace_ops"] and first["check"] == "conv2d_basic"
    assert not grader.probes[0]["trace_ops"], "conv_output_size is not a from-scratch part"
    assert set(grader.files) == {"cnnkit.py"}


def test_unreadable_submission_gets_a_fatal_result_for_every_check(kit):
    result = kit.grade(ASSIGNMENT, b"\x00\x01garbage")
    assert result.score == 0 and "not valid JSON" in result.fatal
    assert len(result.tests) == len(kit.grader(ASSIGNMENT).rubric.checks)
    assert all(t.output.startswith("not graded:") for t in result.tests)


def test_broken_setup_and_missing_cells_are_explained(kit, course):
    data = json.loads(course.source_notebook(ASSIGNMENT).read_text())
    data["cells"] = [
        c
        for c in data["cells"]
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") != "conv_output_size"
    ]
    result = kit.grade(ASSIGNMENT, json.dumps(data).encode())
    failed = {t.check: t.output for t in result.tests if not t.passed}
    assert set(failed) == {"output_size_formula"}
    assert "missing from the notebook" in failed["output_size_formula"]
    assert result.score == result.max_score - 2


def test_static_findings_only_touch_from_scratch_parts(course):
    grader = AssignmentGrader(course, ASSIGNMENT)
    cells = {
        "conv2d": "import torch.nn.functional as F\ndef conv2d(x, w):\n    return F.conv2d(x, w)\n",
        "conv_output_size": "def conv_output_size(*a):\n    return 1\n",
    }
    findings = grader.findings(cells)
    assert set(findings) == {"conv2d"}
    escape = grader.findings({"conv_output_size": "import importlib\n"})
    assert set(escape) == {p.id for p in grader.rubric.parts if p.forbidden}
