"""Grading a class: workers in parallel, results written as they finish, resumable.

Each finished submission is written at once (``results.json`` by atomic rename,
then ``feedback.html``, then the gradebook), so killing the run loses nothing
that finished. A rerun skips every student whose ``results.json`` matches the
submitted file's hash, unless ``force`` is set.
"""

from __future__ import annotations

import hashlib
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from autograder.course import Course
from autograder.gradebook import open_gradebook, record
from autograder.grader import AssignmentGrader
from autograder.report import write_class_report, write_feedback, write_grades_csv
from autograder.results import SubmissionResult, read_results, write_json_atomic
from autograder.sandbox import SandboxInfo, Worker, check_bubblewrap
from autograder.submissions import Submission, discover


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


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device '{device}' (use auto, cpu or cuda)")
    return device


def resolve_sandbox(mode: str) -> SandboxInfo:
    if mode == "rlimits":
        return SandboxInfo("rlimits", "requested with --sandbox rlimits")
    info = check_bubblewrap()
    if mode == "bubblewrap" and info.mode != "bubblewrap":
        raise RuntimeError(f"bubblewrap was required but does not work here: {info.reason}")
    if info.mode != "bubblewrap":
        print(f"WARNING: {info.description}", file=sys.stderr)
    return info


def _sha(path: Path | None) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path else ""


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
    device = resolve_device(device)
    grader = AssignmentGrader(course, assignment, device)
    info = resolve_sandbox(sandbox)
    submissions = discover(submissions_dir, assignment, grader.rubric.notebook)
    out_dir.mkdir(parents=True, exist_ok=True)
    gradebook_url = gradebook or f"sqlite:///{(out_dir / 'gradebook.db').resolve()}"
    book = open_gradebook(gradebook_url, grader.rubric)

    results: dict[str, SubmissionResult] = {}
    todo: list[Submission] = []
    for submission in submissions:
        previous = read_results(out_dir / submission.student / "results.json")
        if (
            not force
            and previous is not None
            and submission.path is not None
            and previous.sha256 == _sha(submission.path)
        ):
            results[submission.student] = previous
            record(book, grader.rubric, previous)  # the gradebook may have missed it before a crash
        else:
            todo.append(submission)
    reused = len(results)

    jobs: queue.Queue = queue.Queue()
    for number, submission in enumerate(todo):
        jobs.put((number, submission))
    finished: queue.Queue = queue.Queue()

    def work(index: int) -> None:
        worker = Worker(index, device, grader.rubric.limits, info)
        try:
            worker.start()  # warm once (torch imported) before the first student's clock starts
        except Exception as exc:
            startup_error = f"the sandbox worker could not start: {exc}"
        else:
            startup_error = None
        try:
            while True:
                try:
                    number, submission = jobs.get_nowait()
                except queue.Empty:
                    return
                if startup_error:
                    finished.put(
                        grader.fatal_result(submission.student, "", startup_error, info.description)
                    )
                    continue
                try:
                    finished.put(grade_one(grader, worker, submission, number))
                except Exception as exc:  # a bug of ours must not lose the batch
                    finished.put(
                        grader.fatal_result(
                            submission.student,
                            "",
                            f"internal grader error: {exc!r}",
                            info.description,
                        )
                    )
        finally:
            worker.kill()

    threads = [
        threading.Thread(target=work, args=(i,), daemon=True)
        for i in range(max(1, min(workers, len(todo))))
    ]
    for thread in threads:
        thread.start()
    bar = tqdm(
        total=len(todo),
        desc=f"grading {assignment}",
        unit="nb",
        disable=not progress,
        file=sys.stderr,
    )
    for _ in todo:
        result = finished.get()
        write_json_atomic(out_dir / result.student / "results.json", result.to_gradescope())
        write_feedback(out_dir / result.student / "feedback.html", result, grader.rubric)
        record(book, grader.rubric, result)
        results[result.student] = result
        bar.set_postfix_str(f"{result.student}: {result.score:g}/{result.max_score:g}")
        bar.update()
    bar.close()
    for thread in threads:
        thread.join()
    book.close()

    ordered = [results[key] for key in sorted(results)]
    summary = BatchSummary(
        assignment, out_dir, ordered, len(todo), reused, info, device, time.monotonic() - started
    )
    summary.paths["grades"] = write_grades_csv(out_dir / "grades.csv", ordered, grader.rubric)
    summary.paths["report"] = write_class_report(
        out_dir / "report.html", ordered, grader.rubric, info, device
    )
    summary.paths["gradebook"] = (
        Path(gradebook_url.removeprefix("sqlite:///"))
        if gradebook_url.startswith("sqlite:///")
        else Path(gradebook_url)
    )
    return summary


def grade_one(
    grader: AssignmentGrader, worker: Worker, submission: Submission, number: int
) -> SubmissionResult:
    if submission.path is None:
        return grader.fatal_result(
            submission.student, "", submission.problem, worker.info.description
        )
    try:
        raw = submission.path.read_bytes()
    except OSError as exc:
        return grader.fatal_result(
            submission.student,
            "",
            f"could not read the file ({exc.strerror})",
            worker.info.description,
        )
    result = grader.grade(worker, raw, submission.student, job_id=number)
    if submission.problem:
        result.notes.insert(0, submission.problem)
    return result
