"""The library API behind the command line.

Each function's keyword-only signature, in the module that implements it, is the
single source of its defaults; this module only gathers them.
"""

from __future__ import annotations

from pathlib import Path

from autograder.batch import BatchSummary
from autograder.batch import grade_batch as grade
from autograder.bench import format_figures as format_bench
from autograder.bench import run_bench as bench
from autograder.course import Course
from autograder.release import release

__all__ = ["bench", "demo", "format_bench", "format_summary", "grade", "release"]


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
    lines += [f"not graded: {problem}" for problem in summary.problems]
    lines += [f"{name + ':':<10} {path}" for name, path in summary.paths.items()]
    lines.append(f"{'feedback:':<10} {summary.out_dir}/<student>/feedback.html, results.json")
    return "\n".join(lines)
