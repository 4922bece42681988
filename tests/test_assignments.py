"""Every assignment, end to end: does the solution earn full marks, the release zero,
and does each plausible bug lose exactly the checks it should?"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from autograder.course import Course
from autograder.mutants import apply_mutant, load_mutants
from autograder.notebook import read_source
from autograder.rubric import load_rubric
from autograder.suite import load_suite

ASSIGNMENTS = Course.here().assignments()
MUTANTS = [(a, m) for a in ASSIGNMENTS for m in load_mutants(a)]


def test_there_are_assignments():
    assert "m06_02_convolution" in ASSIGNMENTS


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_rubric_notebook_and_suite_agree(course, assignment):
    rubric = load_rubric(course.rubric_path(assignment))
    cells = read_source(course.source_notebook(assignment))
    by_id = {c.grade_id: c for c in cells if c.grade_id}
    solution_cells = {c.grade_id for c in cells if c.solution}
    assert solution_cells == {p.answer_cell for p in rubric.parts}, (
        "every solution cell is exactly one part's answer cell"
    )
    for part in rubric.parts:
        check_cell = by_id.get(part.check_cell)
        assert check_cell is not None and check_cell.grade and check_cell.locked, (
            f"{part.check_cell} is a locked grade cell"
        )
        assert check_cell.points == part.points, (
            f"{part.check_cell}: notebook {check_cell.points} points, rubric {part.points}"
        )
        assert (
            f"def {part.function}" in by_id[part.answer_cell].source
            or f"class {part.function}" in by_id[part.answer_cell].source
        )
    for setup in rubric.setup_cells:
        assert by_id[setup].locked and not by_id[setup].solution
    assert set(load_suite(assignment).builders) == {c.id for c in rubric.checks}
    graded_total = sum(c.points for c in cells if c.grade)
    assert graded_total == rubric.total_points


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_scores_full_marks(kit, course, assignment):
    result = kit.grade(assignment, course.source_notebook(assignment).read_bytes(), "solution")
    failed = [(t.check, t.output) for t in result.tests if not t.passed]
    assert not failed
    assert result.score == result.max_score > 0
    assert not result.notes


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_scores_zero(kit, course, assignment):
    result = kit.grade(assignment, course.release_notebook(assignment).read_bytes(), "release")
    assert result.score == 0
    assert all("NotImplementedError" in t.output for t in result.tests), [
        t.output for t in result.tests if "NotImplementedError" not in t.output
    ]


@pytest.mark.parametrize(
    ("assignment", "mutant"), MUTANTS, ids=[f"{a}-{m.name}" for a, m in MUTANTS]
)
def test_plausible_bug_loses_exactly_its_checks(kit, course, assignment, mutant):
    result = kit.grade(
        assignment, apply_mutant(course.source_notebook(assignment), mutant), mutant.name
    )
    lost = {t.check for t in result.tests if not t.passed}
    assert lost == set(mutant.loses), {t.check: t.output for t in result.tests if not t.passed}
    rubric = load_rubric(course.rubric_path(assignment))
    assert result.score == rubric.total_points - sum(rubric.check(c).points for c in mutant.loses)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_part_has_a_plausible_bug(course, assignment):
    rubric = load_rubric(course.rubric_path(assignment))
    covered = {m.cell for m in load_mutants(assignment)}
    assert {p.answer_cell for p in rubric.parts} <= covered
    assert sum(m.demo for m in load_mutants(assignment)) == 1


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebook_runs_top_to_bottom_in_smoke_mode(course, assignment, tmp_path):
    output = tmp_path / "executed.ipynb"
    env = dict(os.environ, CNNKIT_SMOKE="1", CNNKIT_DATA=str(tmp_path / "data"))
    env.pop("MPLBACKEND", None)  # the kernel must use the inline backend to show figures
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        "--output",
        str(output),
    ]
    command += ["--ExecutePreprocessor.timeout=300", str(course.source_notebook(assignment))]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    cells = json.loads(output.read_text())["cells"]
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    figures = [o for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert figures, "the notebook draws at least one figure"


@pytest.mark.gpu
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_scores_full_marks_on_cuda(course, sandbox_info, assignment):
    from autograder.grader import AssignmentGrader
    from autograder.sandbox import Worker

    grader = AssignmentGrader(course, assignment, "cuda")
    worker = Worker(90, "cuda", grader.rubric.limits, sandbox_info)
    worker.start()
    try:
        result = grader.grade(worker, course.source_notebook(assignment).read_bytes(), "solution")
    finally:
        worker.kill()
    assert result.device == "cuda"
    assert result.score == result.max_score, [
        (t.check, t.output) for t in result.tests if not t.passed
    ]
