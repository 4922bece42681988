"""Does the trust boundary hold? Hostile and broken submissions graded in one batch
with honest ones: each earns exactly what its code earns, the batch finishes, and
nothing leaks, is forged or is lost."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile_corpus import ASSIGNMENT, CORPUS, SOURCE, Context

from autograder.batch import grade_batch
from autograder.gradebook import open_gradebook
from autograder.mutants import apply_mutant, load_mutants
from autograder.results import TIMING_FIELDS
from autograder.rubric import load_rubric
from tests.conftest import book

RUBRIC = load_rubric(Path(__file__).resolve().parent.parent / "rubrics" / f"{ASSIGNMENT}.yaml")
HONEST = ["aaa_honest", "honest_a", "zzz_honest"]  # sorted first, middle and last in the batch
RESERVED_IDS = ["grades.csv", "report.html", "gradebook.db"]  # the grader's own output names


def student_of(index: int) -> str:
    return f"h{index:02d}"


@pytest.fixture(scope="module")
def hostile_batch(tmp_path_factory, sandbox_info):
    root = tmp_path_factory.mktemp("hostile")
    submissions, out = root / "submitted", root / "graded"
    submissions.mkdir()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    context = Context(out, submissions, out / "gradebook.db", listener.getsockname()[1])
    for name in HONEST + RESERVED_IDS:
        (submissions / f"{name}.ipynb").write_bytes(SOURCE.read_bytes())
    for index, case in enumerate(CORPUS):
        if case.bubblewrap_only and sandbox_info.mode != "bubblewrap":
            continue
        (submissions / f"{student_of(index)}.ipynb").write_bytes(case.build(context))
    started = time.monotonic()
    summary = grade_batch(
        ASSIGNMENT, submissions, out, workers=2, progress=False, gradebook=book(out)
    )
    seconds = time.monotonic() - started
    connections = []
    try:
        while True:
            connections.append(listener.accept())
    except BlockingIOError:
        pass
    listener.close()
    results = {r.student: r for r in summary.results}
    yield {
        "results": results,
        "out": out,
        "seconds": seconds,
        "connections": connections,
        "context": context,
        "summary": summary,
    }
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(CORPUS)), ids=[c.name for c in CORPUS])
def test_each_case_earns_exactly_what_its_code_earns(hostile_batch, sandbox_info, index):
    case = CORPUS[index]
    if case.bubblewrap_only and sandbox_info.mode != "bubblewrap":
        pytest.skip("defended by the bubblewrap sandbox, which does not work here")
    result = hostile_batch["results"][student_of(index)]
    if case.fatal:
        assert result.score == 0 and case.fatal in result.fatal
        assert all(case.fatal in t.output for t in result.tests)
        return
    lost = {t.check for t in result.tests if not t.passed}
    assert lost == case.loses, {t.check: t.output for t in result.tests if not t.passed}
    assert result.score == RUBRIC.total_points - sum(RUBRIC.check(c).points for c in case.loses)
    if case.message:
        said = [t.output for t in result.tests if not t.passed] + result.notes
        assert any(case.message in text for text in said), said
    page = (hostile_batch["out"] / student_of(index) / "feedback.html").read_text()
    for text in case.absent:
        assert text not in page and text not in result.output_tail
    if case.max_seconds is not None:
        assert result.execution_time < case.max_seconds, result.execution_time


@pytest.mark.slow
def test_honest_submissions_keep_full_marks_and_the_batch_finishes(hostile_batch, capsys):
    results = hostile_batch["results"]
    for name in HONEST:
        assert results[name].score == RUBRIC.total_points, results[name].tests
    submitted = list(hostile_batch["context"].submissions.glob("*.ipynb"))
    assert len(results) == len(submitted) - len(RESERVED_IDS)
    with capsys.disabled():
        print(f"\nhostile batch: {len(results)} submissions, {hostile_batch['seconds']:.1f} s")


@pytest.mark.slow
def test_reserved_student_ids_are_named_and_not_graded(hostile_batch):
    out, problems = hostile_batch["out"], hostile_batch["summary"].problems
    for name in RESERVED_IDS:
        assert name not in hostile_batch["results"]
        assert any(problem.startswith(f"{name}.ipynb: not graded") for problem in problems), (
            problems
        )
    assert (out / "gradebook.db").is_file() and (out / "report.html").is_file()
    rows = list(csv.DictReader((out / "grades.csv").open()))
    assert sorted(row["student"] for row in rows) == sorted(hostile_batch["results"])


@pytest.mark.slow
def test_every_report_is_written_and_a_rerun_reuses_everything(hostile_batch):
    out, results = hostile_batch["out"], hostile_batch["results"]
    for student in results:
        (out / student / "feedback.html").read_text(encoding="utf-8")
    report = (out / "report.html").read_text(encoding="utf-8")
    assert all(f"{student}/feedback.html" in report for student in results)
    again = grade_batch(
        ASSIGNMENT,
        hostile_batch["context"].submissions,
        out,
        workers=2,
        progress=False,
        gradebook=book(out),
    )
    assert (again.graded, again.reused) == (0, len(results))
    assert {r.student: r.score for r in again.results} == {s: r.score for s, r in results.items()}
    (out / "report.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_file_name_that_is_not_utf8_is_named_and_reported(tmp_path):
    submissions = tmp_path / "submitted"
    submissions.mkdir()
    (submissions / os.fsdecode(b"\xff\xfe.ipynb")).write_bytes(SOURCE.read_bytes())
    summary = grade_batch(
        ASSIGNMENT,
        submissions,
        tmp_path / "graded",
        workers=1,
        progress=False,
        gradebook=book(tmp_path / "graded"),
    )
    assert summary.results == [] and len(summary.problems) == 1
    assert "not graded" in (tmp_path / "graded" / "report.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_forged_files_change_nothing(hostile_batch, sandbox_info):
    if sandbox_info.mode != "bubblewrap":
        pytest.skip("needs the bubblewrap sandbox")
    out = hostile_batch["out"]
    assert not (out / "someone").exists() and not (out / "forger").exists()
    for student, result in hostile_batch["results"].items():
        assert json.loads((out / student / "results.json").read_text())["score"] == result.score
    book = open_gradebook(f"sqlite:///{out / 'gradebook.db'}", RUBRIC)
    try:
        for student, result in hostile_batch["results"].items():
            assert book.find_submission(ASSIGNMENT, student).score == pytest.approx(result.score)
    finally:
        book.close()


@pytest.mark.slow
def test_secrets_never_reach_the_student(hostile_batch, sandbox_info, course):
    if sandbox_info.mode != "bubblewrap":
        pytest.skip("needs the bubblewrap sandbox")
    index = next(i for i, c in enumerate(CORPUS) if c.name.startswith("reads hidden tests"))
    result = hostile_batch["results"][student_of(index)]
    page = (hostile_batch["out"] / student_of(index) / "feedback.html").read_text()
    assert "blocked" in result.output_tail
    secrets = [
        (course.root / "autograder" / "suites" / f"test_{ASSIGNMENT}.py").read_text(),
        (course.root / "solutions" / "convolution.py").read_text(),
        (course.root / "rubrics" / f"{ASSIGNMENT}.yaml").read_text(),
    ]
    for text in secrets:
        for line in text.splitlines():
            if len(line.strip()) > 30:
                assert line.strip() not in page and line.strip() not in result.output_tail


@pytest.mark.slow
def test_no_network_connection_is_made(hostile_batch, sandbox_info):
    if sandbox_info.mode != "bubblewrap":
        pytest.skip("needs the bubblewrap sandbox")
    assert hostile_batch["connections"] == []


def _timeless(path: Path) -> dict:
    data = json.loads(path.read_text())
    for key in TIMING_FIELDS:
        data.pop(key, None)
    return data


@pytest.mark.slow
def test_the_same_batch_gives_the_same_results_three_times(course, tmp_path):
    submissions = tmp_path / "submitted"
    submissions.mkdir()
    (submissions / "right.ipynb").write_bytes(SOURCE.read_bytes())
    for mutant in load_mutants(ASSIGNMENT)[:3]:
        (submissions / f"{mutant.name}.ipynb").write_bytes(apply_mutant(SOURCE, mutant))
    picks = [
        c
        for c in CORPUS
        if c.name
        in ("infinite loop", "calls os._exit(0) inside a check", "returns NaN", "empty file")
    ]
    for number, case in enumerate(picks):
        (submissions / f"hostile{number}.ipynb").write_bytes(
            case.build(Context(tmp_path, submissions, tmp_path / "gb.db", 9))
        )
    runs = []
    for run in range(3):
        out = tmp_path / f"run{run}"
        grade_batch(ASSIGNMENT, submissions, out, workers=2, progress=False, gradebook=book(out))
        runs.append({p.parent.name: _timeless(p) for p in out.glob("*/results.json")})
    assert runs[0] == runs[1] == runs[2]
    assert len(runs[0]) == 8


@pytest.mark.slow
def test_killing_grade_mid_batch_loses_and_duplicates_nothing(course, tmp_path):
    submissions, out = tmp_path / "submitted", tmp_path / "graded"
    submissions.mkdir()
    for number in range(10):
        (submissions / f"s{number:02d}.ipynb").write_bytes(SOURCE.read_bytes())
    slow = next(c for c in CORPUS if c.name == "sleeps past the wall-clock limit")
    (submissions / "s99.ipynb").write_bytes(
        slow.build(Context(out, submissions, out / "gradebook.db", 9))
    )
    command = [
        sys.executable,
        "-m",
        "autograder",
        "grade",
        ASSIGNMENT,
        str(submissions),
        "--out",
        str(out),
        "--workers",
        "2",
        "--no-progress",
        f"--gradebook=sqlite:///{out / 'gradebook.db'}",
    ]
    process = subprocess.Popen(
        command,
        cwd=course.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("*/results.json"))) < 3:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = {p.parent.name: p.read_text() for p in out.glob("*/results.json")}
    assert 3 <= len(before) < 11, "killed part-way through"

    done = subprocess.run(command, cwd=course.root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"({11 - len(before)} graded, {len(before)} up to date)" in done.stdout
    after = {p.parent.name: p.read_text() for p in out.glob("*/results.json")}
    assert set(after) == {f"s{n:02d}" for n in range(10)} | {"s99"}
    assert all(after[name] == text for name, text in before.items()), (
        "finished results are kept as they were"
    )

    export = tmp_path / "export.csv"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "nbgrader",
            "export",
            f"--db=sqlite:///{out / 'gradebook.db'}",
            f"--to={export}",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        env=env,
    )
    rows = list(csv.DictReader(export.open()))
    assert sorted(r["student_id"] for r in rows) == sorted(after), "each student exactly once"
    for row in rows:
        assert float(row["score"]) == json.loads(after[row["student_id"]])["score"]

    forced = subprocess.run(
        [*command, "--force"], cwd=course.root, capture_output=True, text=True, timeout=600
    )
    assert "(11 graded, 0 up to date)" in forced.stdout


@pytest.mark.slow
def test_two_hundred_submissions_each_get_their_solo_score(course, grade, tmp_path, capsys):
    submissions = tmp_path / "submitted"
    submissions.mkdir()
    honest = [("solution", SOURCE.read_bytes())] + [
        (m.name, apply_mutant(SOURCE, m)) for m in load_mutants(ASSIGNMENT)
    ]
    quick_hostile = [
        c
        for c in CORPUS
        if c.name
        in (
            "calls os._exit(0) inside a check",
            "allocates 50 GiB",
            "returns NaN",
            "invalid JSON",
            "raises KeyboardInterrupt inside a check",
        )
    ]
    context = Context(tmp_path / "out", submissions, tmp_path / "out" / "gradebook.db", 9)
    kinds = {}
    for number in range(200):
        if number % 20 == 7:
            case = quick_hostile[(number // 20) % len(quick_hostile)]
            data, kind = case.build(context), f"hostile:{case.name}"
        else:
            kind, data = honest[number % len(honest)]
        kinds[f"s{number:03d}"] = kind
        (submissions / f"s{number:03d}.ipynb").write_bytes(data)
    solo = {name: result.score for name, result in grade(ASSIGNMENT, dict(honest)).items()}
    started = time.monotonic()
    summary = grade_batch(
        ASSIGNMENT,
        submissions,
        tmp_path / "out",
        workers=2,
        progress=False,
        gradebook=book(tmp_path / "out"),
    )
    seconds = time.monotonic() - started
    results = {r.student: r for r in summary.results}
    assert len(results) == 200
    for student, kind in kinds.items():
        if not kind.startswith("hostile"):
            assert results[student].score == solo[kind], (student, kind)
    with capsys.disabled():
        print(f"\n200 submissions (190 honest, 10 hostile), 2 workers: {seconds:.1f} s")
