"""The pytest plugin behind the hidden suites ``autograder/suites/test_<id>.py``.

One test function (with its parametrized cases) is one rubric check:
``test_conv2d_stride`` is the rubric's check ``conv2d_stride``, and its
parametrize ids are the case labels feedback shows. The fixtures:

- ``student``: the submission; ``student.conv2d(x, w)`` calls the student's
  function and returns plain values, objects that cannot cross come back as
  handles (see ``autograder/remote.py``);
- ``inputs``: seeded random inputs keyed by the test's node id;
- ``check``: comparisons with this check's rubric tolerances;
- ``reference``: ``reference(lambda: ref.conv2d(...))`` computes a trusted value
  once per case and reuses it for every later submission of a batch (inputs are
  seeded by the case, so the value is the same).

The same file runs in three modes:

- ``pytest autograder/suites/test_<id>.py``: the solution notebook in
  ``source/``, in this process (how an instructor checks a hidden test);
- ``... --submission PATH.ipynb``: one submission through the sandbox; prints
  each check's result and exits 0 only when everything passes;
- ``--grade-serve R,W`` (used by ``grade``): collects once, then grades every
  submission the parent sends on fd R, one sandboxed child each, and writes one
  JSON result per line to fd W.

Everything here runs in the trusted process. The from-scratch rule is decided
by static analysis before a part's tests run; the operator trace from the
sandbox can only take points away.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import resource
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from _pytest.runner import runtestprotocol

from autograder import sandbox
from autograder.checks import CheckFailure, CheckHelper
from autograder.config import load_config
from autograder.course import Course
from autograder.fixtures import Fixtures
from autograder.grader import AssignmentGrader, CaseOutcome, Prepared
from autograder.notebook import NotebookError
from autograder.remote import (
    CallContext,
    OutputError,
    SandboxLimit,
    StaleHandle,
    Student,
    StudentError,
    clean_text,
)
from autograder.rubric import Check, Part
from autograder.sandbox import (
    LocalSession,
    SandboxError,
    SandboxInfo,
    SandboxSession,
    Worker,
    wall_seconds,
)
from autograder.submissions import submission_sha, weights_beside
from autograder.weights import Attachment, read_weights

LIMITED = "not run after an earlier case of this check reached a limit"
JUDGE_MEMORY_MB = 4096  # the trusted judge's own headroom while grading a class
STATE: Grading | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("autograder", "hidden suites")
    group.addoption(
        "--submission",
        metavar="PATH",
        help="grade this notebook through the sandbox (default: the solution notebook, in-process)",
    )
    group.addoption(
        "--weights",
        default=None,
        help="the weights file submitted with --submission (default: the rubric's file, "
        "or <notebook stem>.pt, beside the notebook)",
    )
    group.addoption("--device", default="auto", choices=("auto", "cpu", "cuda"))
    group.addoption("--sandbox", default="auto", choices=("auto", "bubblewrap", "rlimits"))
    group.addoption("--grade-serve", help=argparse.SUPPRESS)
    group.addoption("--worker-index", type=int, default=0, help=argparse.SUPPRESS)


def resolve_device(device: str) -> str:
    try:
        return sandbox.resolve_device(device)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def resolve_sandbox(mode: str) -> SandboxInfo:
    try:
        return sandbox.resolve_sandbox(mode)
    except RuntimeError as exc:
        raise pytest.UsageError(str(exc)) from None


@dataclass(frozen=True)
class Spec:
    """What a collected test item grades."""

    check: Check
    part: Part
    label: str


def runtime_violation(ops: set[str], part: Part) -> str | None:
    """Plain words for forbidden operators seen at run time, or None."""
    patterns = part.forbidden.ops if part.forbidden else ()
    seen = sorted(op for op in ops if any(fnmatch.fnmatchcase(op, p) for p in patterns))
    if not seen:
        return None
    words = []
    if any("conv" in op for op in seen):
        words.append("a convolution (such as F.conv2d)")
    if any("pool" in op for op in seen):
        words.append("a pooling operator (such as F.max_pool2d)")
    if not words:
        words.append(", ".join(seen[:3]))
    return (
        f"from-scratch rule: the code ran {' and '.join(words)} while this check ran, "
        "which this task forbids"
    )


class Grading:
    """The plugin's state for one pytest session: one assignment, one mode."""

    def __init__(self, config: pytest.Config, assignment: str) -> None:
        self.config = config
        self.mode = (
            "serve"
            if config.getoption("grade_serve")
            else "submission"
            if config.getoption("submission")
            else "solution"
        )
        self.device = resolve_device(config.getoption("device"))
        self.grader = AssignmentGrader(Course.here(), assignment, self.device)
        self.rubric = self.grader.rubric
        if self.rubric.cpu_only:  # its figures (a CPU latency) mean nothing on a GPU
            self.device = self.grader.device = "cpu"
        self.specs: dict[str, Spec] = {}
        self.outcomes: dict[str, CaseOutcome] = {}
        self.session: LocalSession | SandboxSession | None = None
        self.prepared: Prepared | None = None
        self.fatal: str | None = None
        self.info: SandboxInfo | None = None
        self.worker: Worker | None = None
        self.references: dict[tuple[str, int], object] = {}
        self.limited: set[str] = set()  # checks with a case that reached a limit
        self.board: dict[str, dict] = {}  # this submission's leaderboard figures

    # ---------------------------------------------------------------- collection

    def collect(self, items: list[pytest.Item]) -> None:
        """Map items to rubric checks; tests and rubric must agree both ways."""
        checks = {check.id: check for check in self.rubric.checks}
        tested = set()
        for item in items:
            name = getattr(item, "originalname", item.name)
            check_id = name.removeprefix("test_")
            if check_id not in checks:
                raise pytest.UsageError(
                    f"{item.nodeid}: test_{check_id} is not a check of rubrics/{self.rubric.assignment}.yaml"
                )
            tested.add(check_id)
            callspec = getattr(item, "callspec", None)
            label = callspec.id if callspec is not None else ""
            check = checks[check_id]
            self.specs[item.nodeid] = Spec(check, self.rubric.part(check.part), label)
        missing = [c for c in checks if c not in tested]
        selected = self.config.getoption("keyword") or any("::" in a for a in self.config.args)
        if missing and not selected:
            raise pytest.UsageError(f"rubric checks without a test: {', '.join(missing)}")

    def start(self) -> None:
        if self.mode == "solution":
            folder = self.grader.course.source_dir / self.rubric.assignment
            sys.path.insert(0, str(folder))
            self.prepared = self.grader.solution()
            self.session = LocalSession(self.prepared.program, self.device)
            spec = self.rubric.weights
            if spec is not None:  # --weights, or the instructor's beside the source notebook
                path = Path(self.config.getoption("weights") or folder / spec.file)
                self.session.weights_path = str(path) if path.is_file() else None
                self.session.weights_problem = (
                    f"the solution has no {spec.file} beside {self.rubric.notebook}: run the "
                    "notebook to train and save it"
                )
        elif self.mode == "submission":
            path = Path(self.config.getoption("submission"))
            self.info = resolve_sandbox(self.config.getoption("sandbox"))
            try:
                self.prepared = self.grader.prepare(path.read_bytes())
            except (OSError, NotebookError) as exc:
                self.fatal = f"not graded: {exc}"
                return
            self.worker = self.start_worker()
            weights = self.config.getoption("weights")
            if weights is None and self.rubric.weights is not None:
                weights = weights_beside(path, self.rubric.weights.file)
            self.session = self.sandbox_session(weights)

    def sandbox_session(self, weights: Path | str | None) -> SandboxSession:
        """The submission's sandboxed session, with its weights file where the rubric asks."""
        attachment = Attachment()
        if self.rubric.weights is not None:
            attachment = read_weights(weights, self.rubric.weights)
        files = {**self.grader.files, **attachment.files()}
        session = SandboxSession(self.worker, self.prepared.program, files)
        session.weights_path = attachment.sandbox_path or None
        session.weights_problem = attachment.problem
        return session

    def new_worker(self) -> Worker:
        return Worker(
            self.config.getoption("worker_index"), self.device, self.rubric.limits, self.info
        )

    def start_worker(self) -> Worker:
        worker = self.new_worker()
        worker.start()  # warm once (torch imported) before the first student's clock starts
        return worker

    def launch_worker(self) -> None:
        """Serve mode: launch the worker early; :meth:`serve` waits until it is warm."""
        from autograder import early

        if early.WORKER is not None and early.WORKER[2] == self.device:
            self.worker, self.info, _ = early.WORKER  # launched before the suite was imported
            early.WORKER = None
            return
        self.info = resolve_sandbox(self.config.getoption("sandbox"))
        self.worker = self.new_worker()
        try:
            self.worker.launch()
        except (OSError, SandboxError):
            self.worker = None

    # ---------------------------------------------------------------- fixtures

    def student(self, item: pytest.Item) -> Student:
        spec = self.specs[item.nodeid]
        if self.fatal:
            raise CheckFailure(self.fatal)
        if spec.check.id in self.limited:  # one rule in every mode: a limit is paid once
            raise CheckFailure(LIMITED)
        findings = self.prepared.findings.get(spec.part.id)
        if findings:
            raise CheckFailure(
                "from-scratch rule: " + "; ".join(f.describe() for f in findings[:2])
            )
        cpu = spec.check.cpu_seconds or self.rubric.limits.call_cpu_seconds
        self.session.context = CallContext(
            cpu_seconds=cpu,
            wall_seconds=wall_seconds(cpu),
            trace=spec.part.forbidden is not None and bool(spec.part.forbidden.ops),
            seed=zlib.crc32(item.name.encode()),
        )
        return Student(self.session)

    # ---------------------------------------------------------------- outcomes

    def describe(self, exc: BaseException, spec: Spec) -> tuple[str, bool]:
        """Feedback for a failure: never the test's source or a reference value."""
        if isinstance(exc, CheckFailure):
            return clean_text(str(exc), 1000), False
        if isinstance(exc, SandboxLimit):
            return clean_text(str(exc), 1000), True
        if isinstance(exc, StudentError | OutputError | StaleHandle):
            return clean_text(str(exc), 1000), False
        return f"{spec.check.description}: the check failed ({type(exc).__name__})", False

    def record(self, item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> None:
        spec = self.specs[item.nodeid]
        if item.nodeid in self.outcomes and not self.outcomes[item.nodeid].passed:
            return  # the first failure of a case is its message
        if report.failed:
            message, limit = self.describe(call.excinfo.value, spec)
        elif report.when == "call" and report.passed:
            context = getattr(self.session, "context", None)
            violation = runtime_violation(context.ops if context else set(), spec.part)
            if violation is None:
                self.outcomes[item.nodeid] = CaseOutcome(spec.check.id, spec.label, True)
                return
            report.outcome = "failed"
            message, limit = violation, False
        else:
            return
        self.outcomes[item.nodeid] = CaseOutcome(spec.check.id, spec.label, False, message, limit)
        if limit:
            self.limited.add(spec.check.id)
        if self.mode != "solution":
            report.longrepr = f"{spec.label}: {message}" if spec.label else message

    def record_board(self, name: str, value: float) -> None:
        boards = {board.name: board for board in self.rubric.leaderboard}
        if name not in boards:
            raise KeyError(f"{name!r} is not a leaderboard entry of the rubric")
        self.board[name] = {"name": name, "value": float(value), "order": boards[name].order}

    def result(self, student: str, sha: str, items: list[pytest.Item]):
        outcomes = [self.outcomes[i.nodeid] for i in items if i.nodeid in self.outcomes]
        session = self.session
        result = self.grader.result(
            student,
            sha,
            self.prepared,
            outcomes,
            session.cell_errors if session else {},
            sandbox=self.info.description if self.info else "in-process (solution notebook)",
            seconds=getattr(session, "seconds", 0.0),
            output_tail=session.output_tail if session else "",
        )
        boards = [board.name for board in self.rubric.leaderboard]
        result.leaderboard = [self.board[name] for name in boards if name in self.board]
        return result

    # ---------------------------------------------------------------- batch server

    def serve(self, session: pytest.Session) -> None:
        reading, writing = (int(fd) for fd in self.config.getoption("grade_serve").split(","))
        if self.info is None:
            self.info = resolve_sandbox(self.config.getoption("sandbox"))
        startup_error = None
        try:
            if self.worker is None:
                self.worker = self.start_worker()
            else:
                self.worker.wait_ready()
        except (OSError, SandboxError) as exc:
            startup_error = f"the sandbox worker could not start: {exc}"
        with os.fdopen(reading, "r") as jobs, os.fdopen(writing, "w") as results:
            for line in jobs:
                job = json.loads(line)
                if startup_error:
                    result = self.grader.fatal_result(
                        job["student"], "", startup_error, self.info.description
                    )
                else:
                    result = self.grade(session, job)
                message = {"result": result.to_gradescope(), "output_tail": result.output_tail}
                results.write(json.dumps(message) + "\n")
                results.flush()
        if self.worker is not None:
            self.worker.kill()

    def grade(self, session: pytest.Session, job: dict):
        student, problem = job["student"], job.get("problem") or ""
        fatal = self.grader.fatal_result
        if not job.get("path"):
            return fatal(student, "", problem, self.info.description)
        try:
            raw = Path(job["path"]).read_bytes()
        except OSError as exc:
            return fatal(
                student, "", f"could not read the file ({exc.strerror})", self.info.description
            )
        weights = job.get("weights") if self.rubric.weights is not None else None
        sha = submission_sha(raw, Path(weights) if weights else None)
        try:
            self.prepared = self.grader.prepare(raw)
        except NotebookError as exc:
            return fatal(student, sha, str(exc), self.info.description)
        self.session = self.sandbox_session(weights)
        self.outcomes = {}
        self.limited = set()
        self.board = {}
        items = session.items
        for index, item in enumerate(items):
            nextitem = items[index + 1] if index + 1 < len(items) else None
            runtestprotocol(item, nextitem=nextitem, log=False)
        session._setupstate.teardown_exact(None)
        self.session.close()
        result = self.result(student, sha, items)
        if problem:
            result.notes.insert(0, problem)
        return result


# --------------------------------------------------------------------------- hooks


def pytest_configure(config: pytest.Config) -> None:
    global STATE
    if config.getoption("grade_serve"):
        # Start the sandbox worker now, so that it warms up while the judge collects.
        suites = [Path(arg) for arg in config.args if Path(arg).name.startswith("test_")]
        if len(suites) == 1 and suites[0].suffix == ".py":
            STATE = Grading(config, suites[0].stem.removeprefix("test_"))
            STATE.launch_worker()
    # CUDA reserves far more address space than it uses: the bound is for CPU grading.
    if config.getoption("grade_serve") and resolve_device(config.getoption("device")) == "cpu":
        try:  # the judge's own bound; children of this process may lift the soft limit
            with open("/proc/self/status") as status:
                size = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
            limit = size * 1024 + JUDGE_MEMORY_MB * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
        except (OSError, ValueError, StopIteration):
            pass


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items) -> None:
    global STATE
    assignments = {Path(str(item.fspath)).stem.removeprefix("test_") for item in items}
    if not assignments:
        return
    if len(assignments) > 1:
        raise pytest.UsageError(
            f"run one hidden suite at a time (got {', '.join(sorted(assignments))})"
        )
    assignment = assignments.pop()
    if STATE is None or STATE.rubric.assignment != assignment:
        STATE = Grading(config, assignment)
    STATE.collect(items)
    STATE.start()


def pytest_runtestloop(session: pytest.Session):
    if STATE is None or STATE.mode != "serve":
        return None
    if session.testsfailed:
        raise session.Failed("collection failed")
    STATE.serve(session)
    # Every result is written and the worker is gone: end here. Tearing down torch and
    # pytest takes half a second that a single regrade would wait for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    if STATE is not None and item.nodeid in STATE.specs:
        STATE.record(item, call, outcome.get_result())


def pytest_sessionfinish(session: pytest.Session) -> None:
    if STATE is not None and STATE.mode == "submission":
        if STATE.session is not None:
            STATE.session.close()
        if STATE.worker is not None:
            STATE.worker.kill()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if STATE is None or STATE.mode == "serve" or STATE.prepared is None and not STATE.fatal:
        return
    if STATE.fatal:
        terminalreporter.write_sep("=", "feedback")
        terminalreporter.write_line(STATE.fatal)
        return
    result = STATE.result("submission", "", getattr(config, "_autograder_items", []))
    terminalreporter.write_sep("=", f"feedback ({STATE.rubric.title})")
    for test in result.tests:
        mark = "PASS" if test.passed else "FAIL"
        terminalreporter.write_line(
            f"{mark} {test.score:g}/{test.max_score:g}  {test.check}: {test.output}"
        )
    for entry in result.leaderboard:
        terminalreporter.write_line(f"leaderboard: {entry['name']} = {entry['value']:.4g}")
    for note in result.notes:
        terminalreporter.write_line(f"note: {note}")
    terminalreporter.write_line(f"score: {result.score:g}/{result.max_score:g}")


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    session.config._autograder_items = list(session.items)


# --------------------------------------------------------------------------- fixtures


def _spec(request: pytest.FixtureRequest) -> Spec:
    if STATE is None or request.node.nodeid not in STATE.specs:
        raise RuntimeError("the autograder fixtures work in hidden suites only")
    return STATE.specs[request.node.nodeid]


@pytest.fixture
def student(request: pytest.FixtureRequest) -> Student:
    """The submission: ``student.<name>`` is the student's function or class."""
    _spec(request)
    return STATE.student(request.node)


@pytest.fixture
def inputs(request: pytest.FixtureRequest) -> Fixtures:
    """Seeded random inputs, the same on every run of this test case."""
    _spec(request)
    return Fixtures(f"{STATE.rubric.assignment}/{request.node.name}")


@pytest.fixture
def heldout_data(request: pytest.FixtureRequest) -> Path | None:
    """The assignment's held-out data set (``c.Autograder.heldout_data`` in the course's
    nbgrader_config.py), or None: the suite then uses its offline fixture. It is read
    here, in the judge; students never see it."""
    _spec(request)
    folder = load_config(STATE.grader.course.root).heldout_data.get(STATE.rubric.assignment)
    if folder is not None and not folder.exists():
        raise CheckFailure(f"the course's held-out data set ({folder}) is missing: not graded")
    return folder


@pytest.fixture
def leaderboard(request: pytest.FixtureRequest):
    """``leaderboard(name, value)``: a figure of this submission for the class leaderboard
    (the rubric's ``leaderboard`` names them); it goes to results.json and the class report."""
    _spec(request)
    return STATE.record_board


@pytest.fixture
def check(request: pytest.FixtureRequest) -> CheckHelper:
    """Comparisons with this check's rubric tolerances, on the grading device."""
    return CheckHelper(_spec(request).check, STATE.device)


@pytest.fixture
def reference(request: pytest.FixtureRequest):
    """``reference(thunk)``: the thunk's value, computed once per case and batch.

    Draw every random input before the first ``reference`` call of a test: a cached
    thunk does not run, so draws inside it would shift the ones after it.
    """
    node = _spec(request) and request.node.nodeid
    counter = iter(range(1 << 30))

    def cached(thunk):
        key = (node, next(counter))
        if key not in STATE.references:
            STATE.references[key] = thunk()
        return STATE.references[key]

    return cached
