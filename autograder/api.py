"""The library API behind the command line. Keyword-only arguments hold the defaults."""

from __future__ import annotations

from pathlib import Path

from autograder.batch import BatchSummary, grade_batch
from autograder.course import Course
from autograder.release import release as _release


def release(assignments: list[str] | None = None, *, course: Course | None = None) -> list[Path]:
    """Generate ``release/<id>/`` from ``source/<id>/`` for the given (or all) assignments."""
    return _release(assignments, course=course)


def grade(
    assignment: str,
    submissions: str | Path,
    out: str | Path,
    *,
    workers: int = 2,
    device: str = "auto",
    gradebook: str | None = None,
    force: bool = False,
    sandbox: str = "auto",
    progress: bool = True,
    course: Course | None = None,
) -> BatchSummary:
    """Grade a batch; writes results.json and feedback.html per student, report.html, grades.csv."""
    return grade_batch(
        assignment,
        submissions,
        out,
        workers=workers,
        device=device,
        gradebook=gradebook,
        force=force,
        sandbox=sandbox,
        progress=progress,
        course=course,
    )


def demo(
    out: str | Path = "demo",
    *,
    assignments: list[str] | None = None,
    workers: int = 2,
    course: Course | None = None,
) -> list[BatchSummary]:
    """Release, build a demo class per assignment, grade it; see :mod:`autograder.demo`."""
    from autograder.demo import run_demo

    return run_demo(
        Path(out), assignments=assignments, workers=workers, course=course or Course.here()
    )


def bench(
    assignment: str = "m06_02_convolution",
    *,
    sizes: tuple[int, ...] = (20, 100, 400),
    baseline_size: int = 20,
    workers: int = 2,
    worker_counts: tuple[int, ...] = (1, 2),
    worker_size: int = 40,
    out: str | Path = "bench",
    course: Course | None = None,
) -> dict:
    """Benchmark this grader against ``nbgrader autograde``; see :mod:`autograder.bench`."""
    from autograder.bench import run_bench

    return run_bench(
        assignment,
        sizes=sizes,
        baseline_size=baseline_size,
        workers=workers,
        worker_counts=worker_counts,
        worker_size=worker_size,
        out=Path(out),
        course=course,
    )


def format_bench(figures: dict) -> str:
    from autograder.bench import format_figures

    return format_figures(figures)


def format_summary(summary: BatchSummary) -> str:
    width = max([len(r.student) for r in summary.results] + [7])
    lines = [
        f"{summary.assignment}: {len(summary.results)} submissions ({summary.graded} graded, {summary.reused} up to date) "
        f"in {summary.seconds:.1f} s on {summary.device}",
        f"sandbox: {summary.sandbox.description}",
        f"{'student':<{width}}  {'score':>11}  notes",
    ]
    for result in summary.results:
        note = (result.fatal or "; ".join(result.notes))[:70]
        lines.append(
            f"{result.student:<{width}}  {result.score:>5g} / {result.max_score:<3g}  {note}"
        )
    lines += [f"{name + ':':<10} {path}" for name, path in summary.paths.items()]
    lines.append(f"{'feedback:':<10} {summary.out_dir}/<student>/feedback.html, results.json")
    return "\n".join(lines)
