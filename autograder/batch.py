"""Grading a class: judge processes in parallel, results written as they finish, resumable.

Each judge is a pytest session over the assignment's hidden suite
(``autograder/suites/test_<id>.py``) in serve mode: it collects the tests
once, starts one sandbox worker, and grades the submissions this process
hands it one at a time, each in a fresh sandboxed child. This process never
runs a hidden test or student code: it hands out jobs, enforces a deadline per
submission (a judge that overruns or dies is replaced, and that submission
gets a clear message), and is the only writer of the outputs.

Each finished submission is written at once (``results.json`` by atomic rename,
then ``feedback.html``, then the gradebook), so killing the run loses nothing
that finished. A rerun skips every student whose ``results.json`` matches the
submitted file's hash, unless ``force`` is set.
"""

from __future__ import annotations

import collections
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from autograder.autograded import build as build_autograded
from autograder.autograded import owner
from autograder.autograded import write as write_autograded
from autograder.config import CourseConfig, load_config
from autograder.course import Course
from autograder.gradebook import GradebookWriter
from autograder.late import describe, late_plugin, lateness, penalty
from autograder.results import SubmissionResult, clean, read_results, write_json_atomic
from autograder.rubric import load_rubric
from autograder.submissions import Submission, discover, submission_sha

if TYPE_CHECKING:  # imported in grade_batch once the judges are starting (torch, matplotlib)
    from autograder.grader import AssignmentGrader
    from autograder.sandbox import SandboxInfo

MAX_RESULT_LINE = 16 * 1024 * 1024  # a judge's result for one submission, as JSON


@dataclass
class BatchSummary:
    assignment: str
    out_dir: Path
    results: list[SubmissionResult]
    graded: int
    reused: int
    sandbox: SandboxInfo
    device: str
    seconds: float
    paths: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _sha(submission: Submission) -> str:
    if submission.path is None:
        return ""
    return submission_sha(submission.path.read_bytes(), submission.weights)


DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def visible_gpus() -> list[str]:
    """The GPUs this process may use, without importing torch (it takes seconds)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip() and gpu.strip() != "-1"]
    return sorted(
        (p.name.removeprefix("nvidia") for p in Path("/dev").glob("nvidia[0-9]*")), key=int
    )


def gpu_plan(device: str, workers: int, gpus: list[str] | None = None) -> tuple[str, list]:
    """The device each judge is told and the GPU it sees (``CUDA_VISIBLE_DEVICES``).

    ``auto`` and ``cuda`` give the judges the visible GPUs in turn, one per
    judge; ``cuda:N`` gives every judge GPU N; each judge then calls its GPU
    ``cuda``. ``cpu`` sees no GPU.
    """
    if not DEVICE.match(device):
        raise ValueError(f"--device {device!r}: use auto, cpu, cuda or cuda:N")
    gpus = visible_gpus() if gpus is None else gpus
    if device == "cpu" or not gpus:
        if device.startswith("cuda:"):
            raise ValueError(f"--device {device} was asked for, but no CUDA device is visible")
        return ("cpu" if device == "auto" else device), [None] * workers
    if device.startswith("cuda:"):
        number = int(device.split(":")[1])
        if number >= len(gpus):
            raise ValueError(f"--device {device}: only {len(gpus)} CUDA device(s) are visible")
        return "cuda", [gpus[number]] * workers
    return device, [gpus[i % len(gpus)] for i in range(workers)]


class Judge:
    """One pytest session serving submissions over a pair of pipes."""

    def __init__(
        self,
        index: int,
        assignment: str,
        course: Course,
        device: str,
        sandbox: str,
        gpu: str | None = None,
    ):
        self.index = index
        jobs_read, self.jobs_fd = os.pipe()
        self.results_fd, results_write = os.pipe()
        suite = course.root / "autograder" / "suites" / f"test_{assignment}.py"
        self.log = tempfile.TemporaryFile()
        command = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider"]
        command += ["--rootdir", str(course.root), "--grade-serve", f"{jobs_read},{results_write}"]
        command += ["--device", device, "--sandbox", sandbox, "--worker-index", str(index)]
        # The judge needs no third-party pytest plugin; scanning for them costs a tenth
        # of a second before the worker can start.
        environment = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
        if gpu is not None:
            environment["CUDA_VISIBLE_DEVICES"] = gpu  # this judge's GPU, called cuda inside
        if device in ("cpu", "cuda"):  # known without torch: the worker can start at once
            command += ["-p", "autograder.early"]
            environment["AUTOGRADER_EARLY_WORKER"] = json.dumps(
                {"assignment": assignment, "device": device, "sandbox": sandbox, "index": index}
            )
        self.process = subprocess.Popen(
            command,
            cwd=course.root,
            env=environment,
            pass_fds=(jobs_read, results_write),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        os.close(jobs_read)
        os.close(results_write)
        self.buffer = bytearray()
        self.current: Submission | None = None
        self.deadline = 0.0

    def send(self, submission: Submission, seconds: float) -> None:
        job = {
            "student": submission.student,
            "path": str(submission.path) if submission.path else None,
            "problem": submission.problem,
            "weights": str(submission.weights) if submission.weights else None,
        }
        os.write(self.jobs_fd, (json.dumps(job) + "\n").encode())
        self.current = submission
        self.deadline = time.monotonic() + seconds

    def read(self) -> list[dict] | None:
        """Complete result lines so far; None when the judge has closed its end."""
        chunk = os.read(self.results_fd, 1 << 20)
        if not chunk:
            return None
        self.buffer += chunk
        messages = []
        while b"\n" in self.buffer:
            line, _, rest = self.buffer.partition(b"\n")
            self.buffer = bytearray(rest)
            messages.append(json.loads(line))
        if len(self.buffer) > MAX_RESULT_LINE:
            return None
        return messages

    def log_tail(self) -> str:
        self.log.seek(0, os.SEEK_END)
        self.log.seek(max(0, self.log.tell() - 3000))
        return self.log.read().decode("utf-8", "replace")

    def close(self, kill: bool = False) -> None:
        self.hang_up(kill)
        self.wait()

    def hang_up(self, kill: bool = False) -> None:
        """No more jobs: the judge finishes and exits (at once with ``kill``)."""
        if self.jobs_fd >= 0:  # once: the number may belong to another file afterwards
            fd, self.jobs_fd = self.jobs_fd, -1
            try:
                os.close(fd)
            except OSError:
                pass
        if kill and self.process.poll() is None:  # never a reaped pid, which may be reused
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                pass

    def wait(self) -> None:
        if self.log.closed:
            return
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        os.close(self.results_fd)
        self.log.close()


def run_judges(
    grader: AssignmentGrader,
    todo: list[Submission],
    *,
    judges: list[Judge],
    start,
    info: SandboxInfo,
):
    """Yield a :class:`SubmissionResult` for every submission in ``todo``, as each finishes.

    ``judges`` are already starting; ``start(index)`` replaces one that died.
    """
    limits = grader.rubric.limits
    budget = limits.submission_seconds + 60
    pending = collections.deque(todo)
    finished = False
    try:
        for judge in judges:
            if pending:
                judge.send(pending.popleft(), budget + limits.startup_seconds)
        while any(judge.current for judge in judges):
            busy = {judge.results_fd: judge for judge in judges if judge.current}
            ready, _, _ = select.select(list(busy), [], [], 0.5)
            for fd in ready:
                judge = busy[fd]
                messages = judge.read()
                if messages is None:
                    judge.deadline = 0.0  # it ended: handled below as a failure
                    continue
                for message in messages:
                    result = SubmissionResult.from_gradescope(message["result"])
                    result.output_tail = message.get("output_tail", "")
                    judge.current = None
                    yield result
                    if pending:
                        judge.send(pending.popleft(), budget)
            for slot, judge in enumerate(judges):
                if judge.current and time.monotonic() > judge.deadline:
                    failed = judge.current
                    stopped = judge.process.poll() is not None
                    judge.hang_up(kill=True)
                    tail = judge.log_tail()  # before close(), which closes the log
                    judge.close(kill=True)
                    why = (
                        "the grading process stopped unexpectedly"
                        if stopped
                        else f"grading took longer than {budget:.0f} s"
                    )
                    print(f"WARNING: {failed.student}: {why}; grader log:\n{tail}", file=sys.stderr)
                    yield grader.fatal_result(
                        failed.student,
                        _sha(failed),
                        f"{why}; it was not graded",
                        info.description,
                    )
                    judges[slot] = start(judge.index)
                    if pending:
                        judges[slot].send(pending.popleft(), budget + limits.startup_seconds)
        finished = True
    finally:
        for judge in judges:  # all at once: each takes a moment to wind down
            judge.hang_up(kill=judge.current is not None)
        if not finished:  # otherwise the caller waits, after writing what it has
            for judge in judges:
                judge.wait()


class Progress:
    """A progress bar on a terminal; in a log (CI, nohup), a plain line every few seconds."""

    def __init__(self, label: str, total: int, enabled: bool = True, every: float = 5.0) -> None:
        self.label, self.total, self.done, self.every = label, total, 0, every
        self.terminal = enabled and sys.stderr.isatty()
        self.plain = enabled and not self.terminal and total > 0
        self.started = self.last = time.monotonic()
        self.bar = tqdm(
            total=total, desc=label, unit="nb", disable=not self.terminal, file=sys.stderr
        )

    def update(self, latest: str) -> None:
        self.done += 1
        self.bar.set_postfix_str(latest)
        self.bar.update()
        now = time.monotonic()
        if self.plain and (now - self.last >= self.every or self.done == self.total):
            self.last = now
            print(
                f"{self.label}: {self.done}/{self.total} done after {now - self.started:.0f} s "
                f"(latest {latest})",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        self.bar.close()


class SandboxLabel:
    """The judges' sandbox, as their results state it.

    Asking :mod:`autograder.sandbox` directly costs this process a torch import
    (seconds of a single regrade), so that happens only when no result has said
    it: every judge failed, or nothing was graded.
    """

    def __init__(self, requested: str) -> None:
        self.requested = requested
        self.seen = ""
        self._info = None

    @property
    def mode(self) -> str:
        return self.resolve().mode

    @property
    def description(self) -> str:
        return self.seen or self.resolve().description

    def resolve(self):
        if self._info is None:
            from autograder.sandbox import resolve_sandbox

            self._info = resolve_sandbox(self.requested)
        return self._info


def _read(path: Path | None) -> bytes | None:
    try:
        return path.read_bytes() if path is not None else None
    except OSError:
        return None


class LatePolicy:
    """Submission times (nbgrader's timestamp.txt) and the configured late penalty."""

    def __init__(self, config: CourseConfig, book: GradebookWriter, submissions: dict) -> None:
        self.config, self.book, self.submissions = config, book, submissions
        self._plugin = None

    def timestamp(self, student: str):
        submission = self.submissions.get(student)
        return lateness(submission.folder if submission else None, None).timestamp

    def apply(self, result: SubmissionResult, note: bool = True) -> float | None:
        """The penalty for ``result`` (noted in it), or None when it was on time."""
        submission = self.submissions.get(result.student)
        late = lateness(submission.folder if submission else None, None)
        if late.problem and note:
            result.notes.append(late.problem)
        if late.timestamp is None:
            return None
        seconds = self.book.seconds_late(result.student, late.timestamp)
        if seconds <= 0:
            return None
        if self._plugin is None:
            self._plugin = late_plugin(self.config)
        points = penalty(self._plugin, result.student, result.score, seconds)
        result.late_penalty = points
        if note:
            result.notes.append(describe(late.timestamp, seconds, points))
        return points


def _require_writable(folder: Path) -> None:
    """``folder`` exists (created if need be) and takes files, or a one-line ValueError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write to --out {folder}: {exc.strerror or exc}") from None


def _require_gradebook_url(url: str) -> None:
    """A malformed URL, or an SQLite file in a folder that cannot take it, fails before grading."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"--gradebook {url!r} is not a database URL (sqlite:///path.db)") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).expanduser().resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise ValueError(f"--gradebook {url!r}: cannot write to {folder}")


def grade_batch(
    assignment: str,
    submissions_dir: str | Path,
    out_dir: str | Path,
    *,
    workers: int = 2,
    device: str = "auto",
    gradebook: str | None = None,
    force: bool = False,
    sandbox: str = "auto",
    progress: bool = True,
    course: Course | None = None,
) -> BatchSummary:
    """Grade every submission of one assignment; see the module docstring."""
    started = time.monotonic()
    course = course or Course.here()
    out_dir = Path(out_dir)
    course.require(assignment)
    config = load_config(course.root)
    rubric = load_rubric(course.rubric_path(assignment))
    heldout = config.heldout_data.get(assignment)
    if heldout is not None and not heldout.exists():
        raise ValueError(f"c.Autograder.heldout_data[{assignment!r}]: {heldout} does not exist")
    submissions, problems = discover(
        submissions_dir,
        assignment,
        rubric.notebook,
        rubric.weights.file if rubric.weights else None,
    )
    problems = [clean(problem) for problem in problems]  # file names need not be UTF-8
    for problem in problems:
        print(f"WARNING: {problem}", file=sys.stderr)
    if not submissions and not problems:
        raise ValueError(f"no notebooks in {submissions_dir}: nothing to grade")
    _require_writable(out_dir)
    # The course's gradebook and autograded/ folder (nbgrader_config.py) by default,
    # so formgrader and generate_feedback see the grades; with --gradebook, the
    # autograded notebooks go under --out instead.
    gradebook_url = gradebook or config.db_url
    _require_gradebook_url(gradebook_url)
    autograded_root = (
        config.root / config.autograded_directory if gradebook is None else out_dir / "autograded"
    )
    by_student = {submission.student: submission for submission in submissions}

    results: dict[str, SubmissionResult] = {}
    todo: list[Submission] = []
    for submission in submissions:
        previous = read_results(out_dir / submission.student / "results.json")
        if (
            not force
            and previous is not None
            and submission.path is not None
            and previous.sha256 == _sha(submission)
        ):
            results[submission.student] = previous
        else:
            todo.append(submission)
    reused = len(results)
    taken = [
        s.student
        for s in todo
        if owner(autograded_root / s.student / assignment, rubric.notebook) == "nbgrader"
    ]
    if taken and not force:
        raise ValueError(
            f"nbgrader autograde has already graded {', '.join(taken[:10])}"
            f"{' and others' if len(taken) > 10 else ''} in {autograded_root}; grading here "
            "would replace those scores: pass --force to replace them, or keep using nbgrader"
        )

    # The judges first: each takes seconds to warm up (torch, the suite, a sandbox
    # worker), and what this process imports next (torch, matplotlib) overlaps with it.
    judge_device, gpus = gpu_plan(device, max(1, min(workers, len(todo))))

    def start(index: int) -> Judge:
        return Judge(index, assignment, course, judge_device, sandbox, gpus[index % len(gpus)])

    judges = [start(i) for i in range(min(workers, len(todo)))]
    try:
        from autograder.grader import AssignmentGrader
        from autograder.report import (
            write_checks_csv,
            write_class_report,
            write_feedback,
            write_grades_csv,
        )

        if judge_device == "cpu":
            device = "cpu"
        else:  # sandbox.py imports torch: a CPU run (or a single regrade) goes without it
            from autograder.sandbox import resolve_device

            device = resolve_device(judge_device)
        grader = AssignmentGrader(course, assignment, device)
        if device == "cuda" and any(gpus):
            device = f"cuda (GPU {', '.join(dict.fromkeys(g for g in gpus if g))}, one per worker)"
        info = SandboxLabel(sandbox)
    except BaseException:
        for judge in judges:
            judge.close(kill=True)
        raise
    try:
        due = config.due_dates.get(assignment)
        book = GradebookWriter(
            gradebook_url, grader.rubric, course.release_notebook(assignment), due
        )
        release = json.loads(course.release_notebook(assignment).read_text(encoding="utf-8"))
        late = LatePolicy(config, book, by_student)
        for previous in results.values():
            # the gradebook or the autograded notebook may have missed it before a crash
            book.record(
                previous, late.timestamp(previous.student), late.apply(previous, note=False)
            )
            folder = autograded_root / previous.student / assignment
            if owner(folder, rubric.notebook) is None:
                raw = _read(by_student[previous.student].path)
                write_autograded(
                    folder, rubric.notebook, build_autograded(release, raw, previous, rubric)
                )

        bar = Progress(f"grading {assignment}", len(todo), enabled=progress)
        if todo:
            finished = run_judges(grader, todo, judges=judges, start=start, info=info)
            for result in finished:
                info.seen = info.seen or result.sandbox
                penalty = late.apply(result)
                write_json_atomic(out_dir / result.student / "results.json", result.to_gradescope())
                write_feedback(out_dir / result.student / "feedback.html", result, grader.rubric)
                raw = _read(by_student[result.student].path)
                write_autograded(
                    autograded_root / result.student / assignment,
                    rubric.notebook,
                    build_autograded(release, raw, result, rubric),
                )
                book.record(result, late.timestamp(result.student), penalty)
                results[result.student] = result
                bar.update(f"{result.student}: {result.score:g}/{result.max_score:g}")
        bar.close()

        ordered = [results[key] for key in sorted(results)]
        summary = BatchSummary(
            assignment,
            out_dir,
            ordered,
            len(todo),
            reused,
            info,
            device,
            time.monotonic() - started,
            problems=problems,
        )
        summary.paths["grades"] = write_grades_csv(out_dir / "grades.csv", ordered, grader.rubric)
        summary.paths["checks"] = write_checks_csv(out_dir / "checks.csv", ordered, grader.rubric)
        summary.paths["report"] = write_class_report(
            out_dir / "report.html", ordered, grader.rubric, info, device, problems
        )
        summary.paths["autograded"] = autograded_root
        summary.paths["gradebook"] = (
            Path(gradebook_url.removeprefix("sqlite:///"))
            if gradebook_url.startswith("sqlite:///")
            else Path(gradebook_url)
        )
        try:
            book.close()  # last: a gradebook error is raised after everything else is written
        except Exception as exc:
            raise RuntimeError(
                f"the gradebook {gradebook_url} could not be written "
                f"({type(exc).__name__}: {str(exc)[:300]}); results, feedback, grades.csv and "
                f"report.html are in {out_dir}"
            ) from None
        return summary
    finally:  # after the reports: the judges wind down meanwhile, and none is left behind
        for judge in judges:
            judge.hang_up(kill=judge.current is not None)
        for judge in judges:
            judge.wait()
