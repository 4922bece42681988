"""Does a class batch write every output, resume after a crash, and regrade on --force?"""

from __future__ import annotations

import json

import pytest

from autograder.batch import grade_batch
from autograder.mutants import apply_mutant, load_mutants
from tests.conftest import book

ASSIGNMENT = "m06_02_convolution"


@pytest.fixture
def small_class(course, submissions):
    source = course.source_notebook(ASSIGNMENT)
    bug = next(m for m in load_mutants(ASSIGNMENT) if m.demo)
    (submissions / "ann.ipynb").write_bytes(source.read_bytes())
    (submissions / "bob.ipynb").write_bytes(apply_mutant(source, bug))
    (submissions / "cat.ipynb").write_bytes(b"")
    return submissions, bug


@pytest.mark.slow
def test_batch_outputs_resume_and_force(course, small_class, tmp_path):
    folder, bug = small_class
    out = tmp_path / "graded"
    first = grade_batch(
        ASSIGNMENT, folder, out, workers=2, progress=False, course=course, gradebook=book(out)
    )
    scores = {r.student: r.score for r in first.results}
    total = first.results[0].max_score
    assert scores["ann"] == total and scores["cat"] == 0
    assert scores["bob"] == total - sum(
        t.max_score for t in first.results[1].tests if t.check in bug.loses
    )
    for student in ("ann", "bob", "cat"):
        data = json.loads((out / student / "results.json").read_text())
        assert data["score"] == scores[student]
        assert (out / student / "feedback.html").read_text().count("<tr>") > 5
    assert "empty file" in (out / "cat" / "feedback.html").read_text()
    assert (out / "grades.csv").read_text().count("\n") == 4
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64") == 3 and first.sandbox.description in report

    # a crash mid-batch: one result lost, another half-written
    (out / "bob" / "results.json").unlink()
    (out / "cat" / "results.json").write_text("{")
    second = grade_batch(
        ASSIGNMENT, folder, out, workers=2, progress=False, course=course, gradebook=book(out)
    )
    assert (second.graded, second.reused) == (2, 1)
    assert {r.student: r.score for r in second.results} == scores

    third = grade_batch(
        ASSIGNMENT,
        folder,
        out,
        workers=1,
        progress=False,
        course=course,
        force=True,
        gradebook=book(out),
    )
    assert (third.graded, third.reused) == (3, 0)
    assert {r.student: r.score for r in third.results} == scores


def test_progress_is_a_plain_line_in_a_log_and_silent_when_off(capsys, monkeypatch):
    from autograder.batch import Progress

    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    bar = Progress("grading a1", 3, every=3600)
    for student in ("amy", "bo", "cy"):
        bar.update(f"{student}: 1/1")
    bar.close()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1  # nothing until a few seconds pass, but always the last
    assert lines[-1].startswith("grading a1: 3/3 done after") and "latest cy: 1/1" in lines[-1]
    quiet = Progress("grading a1", 3, enabled=False)
    quiet.update("amy: 1/1")
    assert capsys.readouterr().err == ""


def test_gpu_plan_gives_one_gpu_per_worker_or_the_one_asked_for():
    from autograder.batch import gpu_plan

    assert gpu_plan("auto", 4, ["0", "1", "2"]) == ("auto", ["0", "1", "2", "0"])
    assert gpu_plan("cuda", 2, ["3", "5"]) == ("cuda", ["3", "5"])
    assert gpu_plan("cuda:1", 3, ["3", "5"]) == ("cuda", ["5", "5", "5"])
    assert gpu_plan("cpu", 2, ["0"]) == ("cpu", [None, None])
    assert gpu_plan("auto", 2, []) == ("cpu", [None, None])
    for bad, gpus in [("cuda:2", ["0", "1"]), ("cuda:0", []), ("tpu", ["0"])]:
        with pytest.raises(ValueError, match="--device"):
            gpu_plan(bad, 1, gpus)


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    from autograder.batch import visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 7")
    assert visible_gpus() == ["2", "7"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


@pytest.mark.slow
def test_a_judge_that_dies_costs_only_its_submission(course, small_class, tmp_path, monkeypatch):
    """A judge process killed mid-grade: that student gets a clear zero, the batch goes on
    with a fresh judge, and no judge outlives the batch."""
    import os
    import signal

    from autograder import batch

    folder, _ = small_class
    judges = []
    send = batch.Judge.send

    def send_and_kill(self, submission, seconds):
        send(self, submission, seconds)
        judges.append(self)
        if submission.student == "ann":
            os.killpg(self.process.pid, signal.SIGKILL)

    monkeypatch.setattr(batch.Judge, "send", send_and_kill)
    out = tmp_path / "graded"
    summary = grade_batch(
        ASSIGNMENT, folder, out, workers=1, progress=False, course=course, gradebook=book(out)
    )
    results = {r.student: r for r in summary.results}
    assert results["ann"].score == 0
    assert "the grading process stopped unexpectedly" in results["ann"].fatal
    assert results["bob"].score > 0  # graded by the judge started in the dead one's place
    assert len({id(judge) for judge in judges}) == 2
    assert all(judge.process.poll() is not None for judge in judges)
