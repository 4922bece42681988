"""`python -m autograder bench`: grading speed at class scale, against plain nbgrader.

Builds a class of N submissions (mostly correct, some with plausible bugs, a few
hostile: a function that never returns), grades it with this system, and grades
a class of the same mix with ``nbgrader autograde`` in the same run on the same
machine. Prints and writes (JSON + PNG) per-submission time (median, p95),
submissions per minute, peak memory per worker (PSS of the worker's process
tree) and the throughput ratio.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder.batch import grade_batch
from autograder.course import HELPER_MODULE, Course, copy_package
from autograder.mutants import apply_mutant, edit_cell, load_mutants
from autograder.rubric import load_rubric

HOSTILE_EVERY = 20  # one hostile submission in twenty
WRONG_EVERY = 5  # one plausible bug in five (of the rest)


# --------------------------------------------------------------------------- the class


def build_class(course: Course, assignment: str, folder: Path, size: int) -> dict[str, str]:
    """A flat folder of ``<student>.ipynb``; returns each student's kind."""
    source = course.source_notebook(assignment)
    rubric = load_rubric(course.rubric_path(assignment))
    mutants = load_mutants(assignment)
    hang = rubric.parts[0].answer_cell
    correct = source.read_bytes()
    hostile = edit_cell(
        source,
        hang,
        lambda text: text.replace(
            "### BEGIN SOLUTION", "### BEGIN SOLUTION\n    while True:\n        pass", 1
        ),
    )
    folder.mkdir(parents=True, exist_ok=True)
    kinds = {}
    for index in range(size):
        student = f"s{index:04d}"
        if index % HOSTILE_EVERY == HOSTILE_EVERY - 1:
            kinds[student], data = "hostile", hostile
        elif mutants and index % WRONG_EVERY == WRONG_EVERY - 1:
            mutant = mutants[(index // WRONG_EVERY) % len(mutants)]
            kinds[student], data = f"wrong:{mutant.name}", apply_mutant(source, mutant)
        else:
            kinds[student], data = "correct", correct
        (folder / f"{student}.ipynb").write_bytes(data)
    return kinds


# --------------------------------------------------------------------------- memory


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            tree.setdefault(ppid, []).append(int(name))
    return tree


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemorySampler:
    """Peak PSS of ``root`` itself and of each process tree directly below it.

    For this grader each tree is a trusted judge process (``top``) with its sandbox
    worker below it (``below``); for nbgrader, a kernel and its helpers.
    """

    def __init__(self, root: int, interval: float = 0.25) -> None:
        self.root = root
        self.interval = interval
        self.peaks: list[int] = []
        self.root_peak = 0
        self.top_peak = 0
        self.below_peak = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop_event.is_set():
            tree = _children()
            sizes = []
            self.root_peak = max(self.root_peak, _pss_kib(self.root))
            for top in tree.get(self.root, []):
                own = _pss_kib(top)
                stack, below = list(tree.get(top, [])), 0
                while stack:
                    pid = stack.pop()
                    below += _pss_kib(pid)
                    stack.extend(tree.get(pid, []))
                self.top_peak = max(self.top_peak, own)
                self.below_peak = max(self.below_peak, below)
                sizes.append(own + below)
            for index, size in enumerate(sorted(sizes, reverse=True)):
                if index < len(self.peaks):
                    self.peaks[index] = max(self.peaks[index], size)
                else:
                    self.peaks.append(size)
            self.stop_event.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.thread.join()

    @property
    def peak_mib(self) -> float:
        return max(self.peaks, default=0) / 1024

    def split_mib(self) -> dict[str, float]:
        return {
            "parent": self.root_peak / 1024,
            "judge": self.top_peak / 1024,
            "sandbox_worker": self.below_peak / 1024,
        }


# --------------------------------------------------------------------------- runs


@dataclass
class RunFigures:
    system: str
    submissions: int
    workers: int
    wall_seconds: float
    per_submission_median: float
    per_submission_p95: float
    per_minute: float
    peak_worker_mib: float
    scores: dict[str, float] = field(default_factory=dict)
    peak_mib_by_role: dict[str, float] = field(default_factory=dict)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))] if ordered else 0.0


def run_ours(course: Course, assignment: str, folder: Path, out: Path, workers: int) -> RunFigures:
    started = time.monotonic()
    with MemorySampler(os.getpid()) as memory:
        summary = grade_batch(
            assignment,
            folder,
            out,
            workers=workers,
            force=True,
            progress=False,
            course=course,
            gradebook=f"sqlite:///{(out / 'gradebook.db').resolve()}",
        )
    wall = time.monotonic() - started
    times = [r.execution_time for r in summary.results]
    return RunFigures(
        system="this grader",
        submissions=len(times),
        workers=workers,
        wall_seconds=wall,
        per_submission_median=statistics.median(times),
        per_submission_p95=_p95(times),
        per_minute=60 * len(times) / wall,
        peak_worker_mib=memory.peak_mib,
        scores={r.student: r.score for r in summary.results},
        peak_mib_by_role=memory.split_mib(),
    )


def run_nbgrader(
    course: Course, assignment: str, folder: Path, work: Path, cell_timeout: int
) -> RunFigures:
    """Plain ``nbgrader autograde`` on the same class: one kernel per notebook, sequential."""
    root = work / "nbgrader-course"
    shutil.rmtree(root, ignore_errors=True)
    (root / "source").mkdir(parents=True)
    shutil.copytree(course.source_dir / assignment, root / "source" / assignment, symlinks=False)
    shutil.copy(course.root / "nbgrader_config.py", root / "nbgrader_config.py")
    data = work / "data"
    env = dict(os.environ, CNNKIT_SMOKE="1", CNNKIT_DATA=str(data))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("MPLBACKEND", None)
    nbgrader = [sys.executable, "-m", "nbgrader"]
    common = [
        "--log-level=ERROR",
        f"--CourseDirectory.root={root}",
        f"--CourseDirectory.db_url=sqlite:///{root / 'gradebook.db'}",
    ]
    subprocess.run(
        [*nbgrader, "generate_assignment", assignment, "--force", *common],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
    )
    # warm the data set once, as the grader's workers are warmed once
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(course.source_dir)!r}); import cnnkit; cnnkit.load_cifar10(); cnnkit.load_cifar10(train=False)",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    for notebook in sorted(folder.glob("*.ipynb")):
        target = root / "submitted" / notebook.stem / assignment
        target.mkdir(parents=True)
        shutil.copy(notebook, target / f"{assignment}.ipynb")
        copy_package(course.helper_module, target / HELPER_MODULE)
    started = time.time()
    with MemorySampler(os.getpid()) as memory:
        subprocess.run(
            [
                *nbgrader,
                "autograde",
                assignment,
                "--create",
                "--force",
                f"--Execute.timeout={cell_timeout}",
                *common,
            ],
            cwd=root,
            env=env,
            capture_output=True,
        )
    wall = time.time() - started
    finished = sorted(
        p.stat().st_mtime for p in (root / "autograded").glob(f"*/{assignment}/{assignment}.ipynb")
    )
    durations = [b - a for a, b in zip([started, *finished[:-1]], finished)]
    count = len(list(folder.glob("*.ipynb")))
    return RunFigures(
        system="nbgrader autograde",
        submissions=count,
        workers=1,
        wall_seconds=wall,
        per_submission_median=statistics.median(durations) if durations else float("nan"),
        per_submission_p95=_p95(durations),
        per_minute=60 * count / wall,
        peak_worker_mib=memory.peak_mib,
        scores={"autograded_notebooks": float(len(finished))},
    )


def run_cold_single(
    course: Course, assignment: str, work: Path, cell_timeout: int, repeats: int = 3
) -> dict:
    """One submission graded from a cold start, as Gradescope or a TA's regrade does.

    Ours: a fresh ``python -m autograder grade`` process (the command line, a new
    gradebook, the judge and its sandbox worker, the reports). Theirs: a fresh
    ``nbgrader autograde`` of the same notebook. Each is run ``repeats`` times,
    alternating, and the median is reported.
    """
    folder = work / "single"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(course.source_notebook(assignment), folder / "amy.ipynb")
    ours, theirs = [], []
    for attempt in range(repeats):
        out = work / f"single-graded-{attempt}"
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable, "-m", "autograder", "--course", str(course.root),
                "grade", assignment, str(folder), "--out", str(out), "--workers", "1",
                "--no-progress", f"--gradebook=sqlite:///{out / 'gradebook.db'}",
            ],
            capture_output=True,
            text=True,
        )  # fmt: skip
        ours.append(time.monotonic() - started)
        if done.returncode != 0:
            raise RuntimeError(f"cold single grade failed:\n{done.stderr[-2000:]}")
        theirs.append(
            run_nbgrader(
                course, assignment, folder, work / f"single-nb-{attempt}", cell_timeout
            ).wall_seconds
        )
    mine, base = statistics.median(ours), statistics.median(theirs)
    return {
        "ours_seconds": ours,
        "nbgrader_seconds": theirs,
        "ours_median": mine,
        "nbgrader_median": base,
        "ratio": base / mine if mine else float("inf"),
    }


# --------------------------------------------------------------------------- report


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({cpu}), {device}, Python {platform.python_version()}, torch {torch.__version__}"


def plot(figures: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_size, by_workers) = plt.subplots(1, 2, figsize=(10, 3.8))
    sizes = figures["scaling"]
    xs = [f["submissions"] for f in sizes]
    by_size.plot(xs, [f["wall_seconds"] for f in sizes], "o-", label="this grader")
    base = figures["baseline"]
    nb = base["nbgrader"]
    by_size.plot(
        [nb["submissions"]], [nb["wall_seconds"]], "s", color="#c44e52", label="nbgrader autograde"
    )
    if xs:
        slope = nb["wall_seconds"] / nb["submissions"]
        by_size.plot(
            [0, max(xs)], [0, slope * max(xs)], ":", color="#c44e52", label="nbgrader, extrapolated"
        )
    by_size.set(
        xlabel="submissions (N)", ylabel="wall-clock seconds", title="Time against class size"
    )
    by_size.legend()
    workers = figures["workers"]
    by_workers.bar(
        [str(f["workers"]) for f in workers], [f["per_minute"] for f in workers], color="#4c72b0"
    )
    by_workers.set(
        xlabel="workers",
        ylabel="submissions per minute",
        title=f"Throughput against workers (N={workers[0]['submissions'] if workers else 0})",
    )
    fig.suptitle(f"{figures['assignment']} on {figures['machine']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_figures(figures: dict) -> str:
    def row(f: dict) -> str:
        roles = f.get("peak_mib_by_role") or {}
        split = (
            f" (parent {roles['parent']:.0f}, judge {roles['judge']:.0f}, sandbox {roles['sandbox_worker']:.0f})"
            if roles and f["system"] == "this grader"
            else ""
        )
        return (
            f"{f['system']:<20} N={f['submissions']:<4} workers={f['workers']}  wall {f['wall_seconds']:7.1f} s  "
            f"median {f['per_submission_median']:5.2f} s  p95 {f['per_submission_p95']:6.2f} s  "
            f"{f['per_minute']:7.1f}/min  peak/worker {f['peak_worker_mib']:6.0f} MiB{split}"
        )

    lines = [
        f"benchmark: {figures['assignment']} on {figures['machine']}",
        f"sandbox: {figures['sandbox']}",
        "",
        "baseline (same class, same run):",
    ]
    lines += [row(figures["baseline"]["ours"]), row(figures["baseline"]["nbgrader"])]
    lines.append(f"throughput ratio (this grader / nbgrader): {figures['baseline']['ratio']:.1f}x")
    cold = figures.get("cold_single")
    if cold:
        lines += [
            "",
            "one submission from a cold start (median of "
            f"{len(cold['ours_seconds'])}, alternating):",
            f"this grader {cold['ours_median']:.1f} s, nbgrader autograde "
            f"{cold['nbgrader_median']:.1f} s: {cold['ratio']:.1f}x faster",
        ]
    lines += ["", "scaling with N:"] + [row(f) for f in figures["scaling"]]
    lines += ["", "scaling with workers:"] + [row(f) for f in figures["workers"]]
    return "\n".join(lines)


def run_bench(
    assignment: str = "m06_02_convolution",
    *,
    sizes: tuple[int, ...] = (20, 100, 400),
    baseline_size: int = 20,
    workers: int = 2,
    worker_counts: tuple[int, ...] = (1, 2),
    worker_size: int = 40,
    out: Path = Path("bench"),
    course: Course | None = None,
    cell_timeout: int = 30,
    cold_repeats: int = 3,
) -> dict:
    from autograder.sandbox import resolve_sandbox

    course = course or Course.here()
    course.require(assignment)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="grader-bench-") as tmp:
        work = Path(tmp)
        baseline_class = work / "baseline"
        kinds = build_class(course, assignment, baseline_class, baseline_size)
        print(
            f"baseline class: {baseline_size} submissions ({sum(k == 'correct' for k in kinds.values())} correct, "
            f"{sum(k.startswith('wrong') for k in kinds.values())} wrong, {sum(k == 'hostile' for k in kinds.values())} hostile)",
            file=sys.stderr,
        )
        ours = run_ours(course, assignment, baseline_class, work / "graded-baseline", workers)
        print(f"  this grader: {ours.wall_seconds:.1f} s", file=sys.stderr)
        theirs = run_nbgrader(course, assignment, baseline_class, work, cell_timeout)
        print(f"  nbgrader autograde: {theirs.wall_seconds:.1f} s", file=sys.stderr)
        cold = run_cold_single(course, assignment, work, cell_timeout, cold_repeats)
        print(
            f"  one submission, cold: {cold['ours_median']:.1f} s against nbgrader's "
            f"{cold['nbgrader_median']:.1f} s",
            file=sys.stderr,
        )
        scaling = []
        for size in sizes:
            folder = work / f"class-{size}"
            build_class(course, assignment, folder, size)
            scaling.append(run_ours(course, assignment, folder, work / f"graded-{size}", workers))
            print(f"  N={size}: {scaling[-1].wall_seconds:.1f} s", file=sys.stderr)
            shutil.rmtree(work / f"graded-{size}", ignore_errors=True)
        folder = work / "workers"
        build_class(course, assignment, folder, worker_size)
        by_workers = [
            run_ours(course, assignment, folder, work / f"graded-w{count}", count)
            for count in worker_counts
        ]
    figures = {
        "assignment": assignment,
        "machine": machine(),
        "sandbox": resolve_sandbox("auto").description,
        "baseline": {
            "ours": asdict(ours),
            "nbgrader": asdict(theirs),
            "ratio": ours.per_minute / theirs.per_minute if theirs.per_minute else float("inf"),
            "nbgrader_cell_timeout_seconds": cell_timeout,
        },
        "cold_single": cold,
        "scaling": [asdict(f) for f in scaling],
        "workers": [asdict(f) for f in by_workers],
    }
    for run in [figures["baseline"]["ours"], *figures["scaling"], *figures["workers"]]:
        run.pop("scores", None)
    (out / "bench.json").write_text(json.dumps(figures, indent=2) + "\n")
    plot(figures, out / "bench.png")
    return figures
