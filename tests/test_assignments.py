"""Every assignment, end to end through ``grade``: does the solution earn full marks, the
release zero, a lazy submission zero, and does each plausible bug lose exactly its checks?
And do the hidden pytest files run in both of their modes?"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

from autograder.course import Course
from autograder.mutants import apply_lazy, apply_mutant, apply_scaling, load_lazy, load_mutants
from autograder.notebook import read_source
from autograder.rubric import load_rubric
from tests.conftest import weights_variant

COURSE = Course.here()
ASSIGNMENTS = COURSE.assignments()
MUTANTS = [(a, m) for a in ASSIGNMENTS for m in load_mutants(a)]
LAZY = [(a, lazy) for a in ASSIGNMENTS for lazy in load_lazy(a)]


def suite_path(assignment: str):
    return COURSE.root / "autograder" / "suites" / f"test_{assignment}.py"


def suite_checks(assignment: str) -> list[str]:
    tree = ast.parse(suite_path(assignment).read_text())
    return [
        node.name.removeprefix("test_")
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]


@pytest.fixture(scope="session")
def graded(grade, solution_weights):
    """One batch per assignment: the solution, the release, every mutant and lazy variant
    (each with the solution's weights file where the assignment takes one, unless a
    mutant names another)."""
    cache = {}

    def results(assignment: str):
        if assignment not in cache:
            source = COURSE.source_notebook(assignment)
            notebooks = {
                "solution": source.read_bytes(),
                "release": COURSE.release_notebook(assignment).read_bytes(),
            }
            notebooks.update(
                {f"m-{m.name}": apply_mutant(source, m) for m in load_mutants(assignment)}
            )
            notebooks.update({f"l-{z.name}": apply_lazy(source, z) for z in load_lazy(assignment)})
            rubric = load_rubric(COURSE.rubric_path(assignment))
            notebooks["t-float32"] = apply_scaling(source, rubric, 1 + 1e-6)
            notebooks["t-bug"] = apply_scaling(source, rubric, 1.01, shift=1)
            weights = None
            if rubric.weights is not None:
                trained = solution_weights(assignment)
                kinds = {f"m-{m.name}": m.weights for m in load_mutants(assignment)}
                weights = {
                    student: weights_variant(kinds.get(student, "solution"), trained)
                    for student in notebooks
                }
            cache[assignment] = grade(assignment, notebooks, weights=weights)
        return cache[assignment]

    return results


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
    tests = suite_checks(assignment)
    assert len(tests) == len(set(tests)), "one test function per check"
    assert set(tests) == {c.id for c in rubric.checks}, "tests and rubric agree both ways"
    graded_total = sum(c.points for c in cells if c.grade)
    assert graded_total == rubric.total_points


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_scores_full_marks(graded, assignment):
    result = graded(assignment)["solution"]
    failed = [(t.check, t.output) for t in result.tests if not t.passed]
    assert not failed
    assert result.score == result.max_score > 0
    assert not result.notes


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_scores_zero(graded, assignment):
    result = graded(assignment)["release"]
    assert result.score == 0
    assert all("NotImplementedError" in t.output for t in result.tests), [
        t.output for t in result.tests if "NotImplementedError" not in t.output
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("assignment", "lazy"), LAZY, ids=[f"{a}-{z.name}" for a, z in LAZY])
def test_lazy_submission_scores_zero(graded, assignment, lazy):
    result = graded(assignment)[f"l-{lazy.name}"]
    assert result.score == 0, [(t.check, t.output) for t in result.tests if t.passed]
    assert not result.fatal


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_float32_rounding_keeps_every_point(graded, assignment):
    """Tolerance policy: every graded output scaled by (1 + 1e-6), one float32 step."""
    result = graded(assignment)["t-float32"]
    assert result.score == result.max_score, [
        (t.check, t.output) for t in result.tests if not t.passed
    ]


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_one_percent_off_loses_a_check_in_every_part(graded, course, assignment):
    """Tolerance policy: outputs scaled by 1.01 and integers off by one are real bugs."""
    result = graded(assignment)["t-bug"]
    rubric = load_rubric(course.rubric_path(assignment))
    lost = {t.check for t in result.tests if not t.passed}
    oracle_parts = [p for p in rubric.parts if not p.scale_free]
    assert oracle_parts, "every part is marked scale_free: nothing checks the tolerance policy"
    kept = [p.id for p in oracle_parts if not lost & {c.id for c in p.checks}]
    assert not kept, f"parts that did not notice 1% off: {kept}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_assignment_has_lazy_submissions(assignment):
    rubric = load_rubric(COURSE.rubric_path(assignment))
    lazy = load_lazy(assignment)
    assert len(lazy) >= 2
    for variant in lazy:
        assert {cell for cell, _ in variant.bodies} == {p.answer_cell for p in rubric.parts}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("assignment", "mutant"), MUTANTS, ids=[f"{a}-{m.name}" for a, m in MUTANTS]
)
def test_plausible_bug_loses_exactly_its_checks(graded, course, assignment, mutant):
    result = graded(assignment)[f"m-{mutant.name}"]
    lost = {t.check for t in result.tests if not t.passed}
    assert lost == set(mutant.loses), {t.check: t.output for t in result.tests if not t.passed}
    rubric = load_rubric(course.rubric_path(assignment))
    assert result.score == rubric.total_points - sum(rubric.check(c).points for c in mutant.loses)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_part_has_a_plausible_bug(course, assignment):
    rubric = load_rubric(course.rubric_path(assignment))
    mutants = load_mutants(assignment)
    covered = {m.cell for m in mutants if m.cell is not None}
    # a part graded on the submitted weights file is covered by a bad weights file
    covered |= {
        rubric.part(rubric.check(check).part).answer_cell
        for m in mutants
        if m.cell is None
        for check in m.loses
    }
    assert {p.answer_cell for p in rubric.parts} <= covered
    assert sum(m.demo for m in load_mutants(assignment)) == 1


def run_suite(assignment: str, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", str(suite_path(assignment)), "-q"]
    command += ["-p", "no:cacheprovider", *extra]
    return subprocess.run(command, cwd=COURSE.root, capture_output=True, text=True, timeout=600)


def weights_option(assignment: str, solution_weights, folder) -> list[str]:
    """``--weights FILE`` with the solution's trained weights, where the assignment takes one."""
    trained = solution_weights(assignment)
    if trained is None:
        return []
    path = folder / "model.pt"
    path.write_bytes(trained)
    return ["--weights", str(path)]


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_hidden_suite_passes_on_the_solution_in_process(assignment, solution_weights, tmp_path):
    done = run_suite(assignment, *weights_option(assignment, solution_weights, tmp_path))
    assert done.returncode == 0, done.stdout[-3000:]
    rubric = load_rubric(COURSE.rubric_path(assignment))
    assert f"score: {rubric.total_points:g}/{rubric.total_points:g}" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_hidden_suite_grades_one_submission_through_the_sandbox(
    assignment, solution_weights, tmp_path
):
    release = COURSE.release_notebook(assignment)
    weights = weights_option(assignment, solution_weights, tmp_path)
    done = run_suite(assignment, "--submission", str(release), *weights)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "score: 0/" in done.stdout
    assert "FAIL 0/" in done.stdout and "NotImplementedError" in done.stdout
    assert "def test_" not in done.stdout and "assert " not in done.stdout  # no test source
    done = run_suite(assignment, "--submission", str(COURSE.source_notebook(assignment)), *weights)
    assert done.returncode == 0, done.stdout[-3000:]


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
def test_solution_scores_full_marks_on_cuda(grade, course, assignment):
    notebooks = {"solution": course.source_notebook(assignment).read_bytes()}
    result = grade(assignment, notebooks, device="cuda", workers=1)["solution"]
    assert result.device == "cuda"
    assert result.score == result.max_score, [
        (t.check, t.output) for t in result.tests if not t.passed
    ]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_notebook_states_the_grading_limits(course, assignment):
    rubric = load_rubric(course.rubric_path(assignment))
    limits = rubric.limits
    intro = read_source(course.source_notebook(assignment))[0].source
    overrides = {
        (rubric.part(check.part).function, check.cpu_seconds)
        for check in rubric.checks
        if check.cpu_seconds is not None
    }
    exceptions = "; ".join(
        f"{seconds:g} s for `{function}`" for function, seconds in sorted(overrides)
    )
    stated = (
        f"Each call may use {limits.call_cpu_seconds:g} s of CPU time"
        + (f" ({exceptions})" if exceptions else "")
        + f" and each cell {limits.cell_cpu_seconds:g} s"
    )
    assert stated in intro and f"the whole submission has {limits.submission_seconds:g} s" in intro
    assert "Helper functions, imports and constants in cells you add are available" in intro
