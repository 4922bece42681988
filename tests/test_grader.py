"""Does one submission get a full, explained result whatever state it is in?"""

from __future__ import annotations

import json

import pytest

from autograder.grader import AssignmentGrader, CaseOutcome

ASSIGNMENT = "m06_02_convolution"


def test_files_and_program_come_from_the_course(course):
    grader = AssignmentGrader(course, ASSIGNMENT)
    assert "cnnkit/__init__.py" in grader.files and "cnnkit/checks.py" in grader.files
    assert all(name.startswith("cnnkit/") for name in grader.files)
    program = grader.solution().program
    assert program[0]["id"] == "setup"
    assert [c["id"] for c in program[1:]] == [p.answer_cell for p in grader.rubric.parts]


def test_a_check_passes_only_when_every_case_passed(course):
    grader = AssignmentGrader(course, ASSIGNMENT)
    prepared = grader.solution()
    outcomes = [
        CaseOutcome("conv2d_basic", "a", True),
        CaseOutcome("conv2d_basic", "b", False, "output: max abs error 1.0e-01"),
        CaseOutcome("conv2d_padding", "c", True),
    ]
    result = grader.result("s", "", prepared, outcomes, {}, sandbox="test")
    by_check = {t.check: t for t in result.tests}
    assert not by_check["conv2d_basic"].passed and "b: output" in by_check["conv2d_basic"].output
    assert by_check["conv2d_padding"].passed
    assert by_check["conv2d_stride"].output == "not run" and not by_check["conv2d_stride"].passed
    assert result.score == by_check["conv2d_padding"].max_score


@pytest.mark.slow
def test_unreadable_and_broken_submissions_are_explained(grade, course):
    data = json.loads(course.source_notebook(ASSIGNMENT).read_text())
    data["cells"] = [
        c
        for c in data["cells"]
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") != "conv_output_size"
    ]
    results = grade(
        ASSIGNMENT, {"garbage": b"\x00\x01garbage", "deleted": json.dumps(data).encode()}
    )
    garbage = results["garbage"]
    assert garbage.score == 0 and "not valid JSON" in garbage.fatal
    assert all(t.output.startswith("not graded:") for t in garbage.tests)
    failed = {t.check: t.output for t in results["deleted"].tests if not t.passed}
    assert set(failed) == {"output_size_formula"}
    assert "missing from the notebook" in failed["output_size_formula"]


@pytest.mark.slow
def test_a_helper_in_a_cell_the_student_added_is_available(grade, course):
    """Definitions in an added cell run; its experiment code (here: an exception and an
    endless loop) does not."""
    data = json.loads(course.source_notebook(ASSIGNMENT).read_text())
    cells = data["cells"]
    index = next(
        i
        for i, c in enumerate(cells)
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "global_avg_pool2d"
    )
    text = "".join(cells[index]["source"])
    cells[index]["source"] = text.replace("return x.mean(dim=(2, 3))", "return _mean(x) * SCALE")
    helper = "SCALE = 1.0\n\ndef _mean(t):\n    return t.mean(dim=(2, 3))\n\n"
    helper += "raise RuntimeError('experiment')\nwhile True:\n    pass\n"
    cells.insert(index, {"cell_type": "code", "metadata": {}, "outputs": [], "source": helper})
    result = grade(ASSIGNMENT, {"helper": json.dumps(data).encode()})["helper"]
    assert result.score == result.max_score, [
        (t.check, t.output) for t in result.tests if not t.passed
    ]
    assert any("ran for their definitions only" in note for note in result.notes)


def test_a_content_loss_that_detaches_its_target_keeps_full_marks(grade, course):
    """The PyTorch tutorial's style: the target is a constant, only the image learns."""
    from autograder.mutants import edit_cell

    source = course.source_notebook("m06_08_style_transfer")
    tutorial = edit_cell(
        source,
        "content_loss",
        lambda text: text.replace(
            "return F.mse_loss(generated, target)",
            "target = target.detach()\n    return ((generated - target) ** 2).mean()",
        ),
    )
    assert tutorial != source.read_bytes()
    result = grade("m06_08_style_transfer", {"tutorial": tutorial})["tutorial"]
    assert result.score == result.max_score, [
        (t.check, t.output) for t in result.tests if not t.passed
    ]


@pytest.mark.slow
def test_a_limit_is_paid_once_per_check_in_batch_and_single_grading(grade, course, tmp_path):
    """An endless loop costs its check one time limit; the check's later cases are not
    run, the same way in ``grade`` and in ``pytest --submission``."""
    import subprocess
    import sys

    from autograder.mutants import edit_cell

    looping = edit_cell(
        course.source_notebook(ASSIGNMENT),
        "conv_output_size",
        lambda text: (
            text + "\n\ndef conv_output_size(*args, **kwargs):\n    while True:\n        pass\n"
        ),
    )
    batch = grade(ASSIGNMENT, {"looping": looping})["looping"]
    path = tmp_path / "looping.ipynb"
    path.write_bytes(looping)
    suite = course.root / "autograder" / "suites" / f"test_{ASSIGNMENT}.py"
    single = subprocess.run(
        [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider"]
        + ["--submission", str(path)],
        cwd=course.root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    formula = next(t for t in batch.tests if t.check == "output_size_formula")
    assert not formula.passed and "limit" in formula.output
    assert formula.output.count("not run after an earlier case of this check reached a limit") >= 2
    assert formula.output.count("limit") - formula.output.count("reached a limit") == 1
    line = next(x for x in single.stdout.splitlines() if "output_size_formula:" in x)
    assert line.startswith("FAIL") and line.count("not run after an earlier case") >= 2
    assert f"score: {batch.score:g}/{batch.max_score:g}" in single.stdout
    assert batch.score == batch.max_score - formula.max_score


def test_a_comparison_with_the_forbidden_api_beside_the_answer_costs_nothing(course):
    """The notebooks promise: the forbidden APIs are off limits inside the functions you
    write, fine elsewhere. Top-level code in an answer cell counts only where the graded
    function reaches it."""
    from autograder.mutants import edit_cell

    grader = AssignmentGrader(course, ASSIGNMENT)
    compare = (
        "\n_x, _w = torch.randn(1, 2, 6, 6), torch.randn(3, 2, 3, 3)\n"
        "expected = F.conv2d(_x, _w)\n"
        "print((conv2d(_x, _w) - expected).abs().max())\n"
    )
    beside = edit_cell(course.source_notebook(ASSIGNMENT), "conv2d", lambda t: t + compare)
    assert grader.prepare(beside).findings == {}
    reached = compare + "\ndef uses_it(x):\n    return expected\n"
    used = edit_cell(
        course.source_notebook(ASSIGNMENT),
        "conv2d",
        lambda t: (
            t.replace("def conv2d(", "def _unused(", 1)
            + reached
            + "\ndef conv2d(x, weight, *args, **kwargs):\n    return uses_it(x)\n"
        ),
    )
    findings = grader.prepare(used).findings
    assert any(not f.escape and f.name.endswith("conv2d") for f in findings.get("conv2d", []))
