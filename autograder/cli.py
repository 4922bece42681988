"""Command line: parses arguments and delegates to :mod:`autograder.api`."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from autograder import api
from autograder.course import Course


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m autograder", description="Release and grade the CNN course assignments."
    )
    parser.add_argument(
        "--course",
        metavar="ROOT",
        help=(
            "the course root (nbgrader_config.py, rubrics/, source/); default: "
            "$AUTOGRADER_COURSE, else the folder around the current directory, "
            "else this repository"
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)

    release = commands.add_parser(
        "release",
        help="generate student versions into release/ with nbgrader",
        epilog="example: python -m autograder release m06_02_convolution",
    )
    release.add_argument(
        "assignments", nargs="*", metavar="ID", help="assignment ids (default: all)"
    )

    grade = commands.add_parser(
        "grade",
        help="grade a folder of submissions",
        epilog=(
            "examples:\n"
            "  python -m autograder grade m06_02_convolution submitted/ --out graded/m06_02\n"
            "  python -m autograder grade m06_05_unet downloads/ --out graded/m06_05 --workers 4 --force"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    grade.add_argument("assignment", metavar="ID", help="assignment id, e.g. m06_02_convolution")
    grade.add_argument(
        "submissions",
        metavar="SUBMISSIONS",
        help="nbgrader submitted/ tree or a folder of <student>.ipynb",
    )
    grade.add_argument(
        "--out", required=True, metavar="DIR", help="where results, feedback and reports go"
    )
    grade.add_argument(
        "--workers",
        type=_positive,
        default=2,
        metavar="N",
        help="sandbox workers in parallel (default 2)",
    )
    grade.add_argument(
        "--device",
        default="auto",
        type=_device,
        metavar="DEVICE",
        help=(
            "auto, cpu, cuda or cuda:N: where hidden tests run inputs (default auto: CUDA "
            "when available, one GPU per worker when there are several; cuda:N puts every "
            "worker on GPU N)"
        ),
    )
    grade.add_argument(
        "--gradebook",
        metavar="URL",
        help=(
            "SQLAlchemy URL (default: the course's db_url in nbgrader_config.py); with it, "
            "autograded notebooks go to DIR/autograded/ instead of the course's autograded/"
        ),
    )
    grade.add_argument(
        "--force",
        action="store_true",
        help=(
            "regrade students whose results are up to date, and replace scores that "
            "nbgrader autograde wrote for them"
        ),
    )
    grade.add_argument(
        "--sandbox",
        default="auto",
        choices=["auto", "bubblewrap", "rlimits"],
        help="isolation (default: bubblewrap where it works)",
    )
    grade.add_argument("--no-progress", action="store_true", help="no progress bar")

    demo = commands.add_parser(
        "demo",
        help="build a small demo class for each assignment and grade it",
        epilog="example: python -m autograder demo m06_02_convolution --out demo",
    )
    demo.add_argument(
        "--out", default="demo", metavar="DIR", help="where the demo classes go (default demo)"
    )
    demo.add_argument(
        "--workers",
        type=_positive,
        default=2,
        metavar="N",
        help="sandbox workers in parallel (default 2)",
    )
    demo.add_argument("assignments", nargs="*", metavar="ID", help="assignment ids (default: all)")
    gradescope = commands.add_parser(
        "gradescope",
        help="build a Gradescope autograder.zip for one assignment",
        description=(
            "Write DIR/autograder.zip for a Gradescope programming assignment: setup.sh "
            "(pinned packages, bubblewrap, an unprivileged user for student code) and "
            "run_autograder (grades the one submitted notebook into results/results.json)."
        ),
        epilog="example: python -m autograder gradescope m06_02_convolution --out dist/m06_02",
    )
    gradescope.add_argument("assignment", metavar="ID", help="assignment id")
    gradescope.add_argument(
        "--out", required=True, metavar="DIR", help="the folder that receives autograder.zip"
    )

    overview = commands.add_parser(
        "overview",
        help="the course at a glance: totals, distributions, pass rates, who needs help",
        description=(
            "Read the --out folders of graded assignments and write OUT/overview.html "
            "(per-student totals, score distributions, pass rate per check, who needs help, "
            "links to every report and feedback page) and OUT/overview.csv (one row per "
            "student: student_id, name and email when a gradebook has them, per-assignment "
            "and per-check scores)."
        ),
        epilog="example: python -m autograder overview graded/m06_02 graded/m06_10 --out course",
    )
    overview.add_argument("graded", nargs="+", metavar="DIR", help="--out folders of grade runs")
    overview.add_argument("--out", required=True, metavar="OUT", help="where the overview goes")
    overview.add_argument(
        "--gradebook",
        metavar="URL",
        help="gradebook with students' names and emails (default: the course's, if it exists)",
    )

    bench = commands.add_parser(
        "bench",
        help="grading speed at class scale, against nbgrader autograde",
        epilog="example: python -m autograder bench --sizes 20 --worker-counts 2 --out bench",
    )
    bench.add_argument(
        "--assignment",
        default="m06_02_convolution",
        metavar="ID",
        help="the assignment whose class is built (default m06_02_convolution)",
    )
    bench.add_argument(
        "--sizes", default="20,100,400", help="class sizes for the scaling run (default 20,100,400)"
    )
    bench.add_argument(
        "--baseline-size",
        type=int,
        default=20,
        metavar="N",
        help="class size graded by both systems (default 20)",
    )
    bench.add_argument(
        "--workers",
        type=_positive,
        default=2,
        metavar="N",
        help="workers for the baseline and scaling runs (default 2)",
    )
    bench.add_argument(
        "--worker-counts", default="1,2", help="worker counts for the workers run (default 1,2)"
    )
    bench.add_argument(
        "--worker-size",
        type=int,
        default=40,
        metavar="N",
        help="class size for the workers run (default 40)",
    )
    bench.add_argument(
        "--out", default="bench", metavar="DIR", help="where bench.json and bench.png go"
    )
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def _device(text: str) -> str:
    if not re.match(r"^(auto|cpu|cuda|cuda:\d+)$", text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got '{text}'")
    return text


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got '{text}'") from None
    if not values or min(values) < 1:
        raise ValueError(f"expected positive integers, got '{text}'")
    return values


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        course = Course.find(args.course)
        if args.command == "release":
            for path in api.release(args.assignments or None, course=course):
                print(f"released {path}")
        elif args.command == "grade":
            summary = api.grade(
                args.assignment,
                args.submissions,
                args.out,
                workers=args.workers,
                device=args.device,
                gradebook=args.gradebook,
                force=args.force,
                sandbox=args.sandbox,
                progress=not args.no_progress,
                course=course,
            )
            print(api.format_summary(summary))
        elif args.command == "gradescope":
            from autograder.gradescope import build_package

            print(f"wrote {build_package(args.assignment, Path(args.out), course=course)}")
        elif args.command == "overview":
            from autograder.config import load_config
            from autograder.overview import write_overview

            book = args.gradebook
            if book is None:
                url = load_config(course.root).db_url
                if url.startswith("sqlite:///") and Path(url[len("sqlite:///") :]).is_file():
                    book = url
            paths = write_overview(
                [Path(d) for d in args.graded], Path(args.out), gradebook=book, course=course
            )
            print(f"overview: {paths['overview']}\ncsv:      {paths['csv']}")
        elif args.command == "bench":
            figures = api.bench(
                args.assignment,
                sizes=_ints(args.sizes),
                baseline_size=args.baseline_size,
                workers=args.workers,
                worker_counts=_ints(args.worker_counts),
                worker_size=args.worker_size,
                out=Path(args.out),
                course=course,
            )
            print(api.format_bench(figures))
            print(f"figures: {args.out}/bench.json, plot: {args.out}/bench.png")
        elif args.command == "demo":
            for summary in api.demo(
                args.out, assignments=args.assignments or None, workers=args.workers, course=course
            ):
                print(api.format_summary(summary))
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
