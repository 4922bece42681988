"""Weights files submitted beside notebooks (Lab 2, c12_efficient_cifar): found in nbgrader's
tree, loaded in the sandbox, and every way they can be wrong costs only the checks that need
them, with a message that says what to fix. The figures reach results.json's leaderboard and
the class report's accuracy-against-latency plot."""

from __future__ import annotations

import io
import json

import pytest
import torch

from autograder.batch import grade_batch
from autograder.course import Course
from autograder.rubric import load_rubric
from tests.conftest import book, weights_variant
from tests.test_gradescope import validate

ASSIGNMENT = "c12_efficient_cifar"
COURSE = Course.here()
RUBRIC = load_rubric(COURSE.rubric_path(ASSIGNMENT))
WEIGHT_CHECKS = {c.id for c in RUBRIC.part("trained_weights").checks}


def saved(payload) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def graded(tmp_path_factory, solution_weights):
    """One batch in nbgrader's layout: the solution notebook with one weights file each."""
    trained = solution_weights(ASSIGNMENT)
    files = {
        "good": trained,
        "missing": None,
        "corrupt": weights_variant("corrupt", trained),
        "checkpoint": weights_variant("checkpoint", trained),
        "pickled": weights_variant("pickled_model", trained),
        "other_model": saved(torch.nn.Linear(4, 2).state_dict()),
        "oversized": b"\0" * int((RUBRIC.weights.max_mb + 1) * 2**20),
    }
    root = tmp_path_factory.mktemp("weights")
    notebook = COURSE.source_notebook(ASSIGNMENT).read_bytes()
    for student, data in files.items():
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / f"{ASSIGNMENT}.ipynb").write_bytes(notebook)
        if data is not None:
            (folder / "model.pt").write_bytes(data)
    out = root / "graded"
    summary = grade_batch(
        ASSIGNMENT, root / "submitted", out, workers=2, progress=False, gradebook=book(out)
    )
    return {r.student: r for r in summary.results}, out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("student", "message"),
    [
        ("missing", "no weights file was submitted: submit it as model.pt beside the notebook"),
        ("corrupt", "model.pt could not be read with torch.load(weights_only=True)"),
        (
            "checkpoint",
            "model.pt is not a state dict: 'model' holds a value of type OrderedDict, not a tensor",
        ),
        ("pickled", "model.pt could not be read with torch.load(weights_only=True)"),
        ("other_model", "model.pt does not fit this model"),
        ("oversized", "is 21.0 MB, over the limit of 20 MB: it was not loaded"),
    ],
)
def test_a_bad_weights_file_costs_only_the_checks_that_need_it(graded, student, message):
    results, _ = graded
    result = results[student]
    failed = {t.check: t.output for t in result.tests if not t.passed}
    assert set(failed) == WEIGHT_CHECKS, failed
    assert all(message in output for output in failed.values()), failed
    assert result.score == RUBRIC.total_points - RUBRIC.part("trained_weights").points


@pytest.mark.slow
def test_good_weights_score_full_marks_and_reach_the_leaderboard(graded):
    results, out = graded
    good = results["good"]
    assert good.score == RUBRIC.total_points, [
        (t.check, t.output) for t in good.tests if not t.passed
    ]
    figures = {entry["name"]: entry for entry in good.leaderboard}
    assert figures["Accuracy (%)"]["value"] == 100.0 and figures["Accuracy (%)"]["order"] == "desc"
    assert 0 < figures["Latency (ms)"]["value"] < 10 and figures["Parameters"]["value"] < 1e6
    data = json.loads((out / "good" / "results.json").read_text())
    validate(data)
    assert data["leaderboard"] == good.leaderboard
    # a failed weights file still leaves the architecture's figures on the board
    assert {e["name"] for e in results["missing"].leaderboard} == {"Latency (ms)", "Parameters"}
    report = (out / "report.html").read_text()
    assert "<h2>Leaderboard</h2><img" in report
    assert report.count("<th>Accuracy (%)</th>") == 1 and report.count("<th>Latency (ms)</th>") == 1


def test_the_leaderboard_plot_needs_both_figures():
    from autograder.report import _leaderboard_figure
    from autograder.results import SubmissionResult

    def result(student, **figures):
        board = [{"name": n, "value": v, "order": "desc"} for n, v in figures.items()]
        return SubmissionResult(ASSIGNMENT, student, 0, 30, [], leaderboard=board)

    names = [board.name for board in RUBRIC.leaderboard[:2]]
    assert _leaderboard_figure([result("a")], RUBRIC) == ""
    figure = _leaderboard_figure([result("a", **{names[0]: 91.0, names[1]: 4.0})], RUBRIC)
    assert figure.startswith("<img")
    bad = SubmissionResult(ASSIGNMENT, "b", 0, 30, [], leaderboard=[{"name": "x", "value": "1"}])
    assert bad.leaderboard == []  # malformed entries are dropped, never drawn


def test_leaderboard_figures_read_well_in_the_table():
    from autograder.report import board_figure

    assert board_figure(322746.0) == "322,746"
    assert board_figure(2.0771) == "2.077"
    assert board_figure(100.0) == "100"
    assert board_figure(None) == ""
