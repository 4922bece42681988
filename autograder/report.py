"""What people read: per-student feedback, the class report with figures, grades.csv."""

from __future__ import annotations

import base64
import csv
import html
import io
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from autograder.results import SubmissionResult
from autograder.rubric import Rubric

if TYPE_CHECKING:
    from autograder.sandbox import SandboxInfo

FIGURES_FROM = 3  # a distribution needs a class: one or two submissions get the table only

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;font-size:.92em}td,th{border-bottom:1px solid #eee;padding:.35em .5em;text-align:left;vertical-align:top}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}.score{font-size:1.3em}
.note{background:#fff8c5;padding:.4em .7em;border-radius:4px;margin:.3em 0}.weak{background:#ffebe9}
code,pre{background:#f6f8fa;padding:.1em .3em;border-radius:3px;font-size:.9em}pre{padding:.6em;white-space:pre-wrap}
img{max-width:100%}.muted{color:#666}.num{white-space:nowrap;text-align:right}
"""


def _page(title: str, body: str) -> str:
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"


def _pyplot():
    """matplotlib, imported when a figure is drawn (a single regrade draws none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(fig) -> str:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f"<img alt='figure' src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"


def _sandbox_note(text: str) -> str:
    weak = "WEAKER" in text
    return f"<p class='note{' weak' if weak else ''}'>Sandbox: {html.escape(text)}</p>"


def write_feedback(path: Path, result: SubmissionResult, rubric: Rubric) -> Path:
    """One student's feedback: every check, pass or fail, with the measured error."""
    rows = []
    for part in rubric.parts:
        tests = [t for t in result.tests if t.part == part.id]
        got = sum(t.score for t in tests)
        rows.append(
            f"<tr><th colspan='3'>{html.escape(part.title)} — {got:g} / {part.points:g}</th></tr>"
        )
        for test in tests:
            status = (
                "<span class='pass'>passed</span>"
                if test.passed
                else "<span class='fail'>failed</span>"
            )
            check = rubric.check(test.check)
            hint = (
                f"<br><span class='muted'>Hint: {html.escape(check.hint)}</span>"
                if check.hint and not test.passed
                else ""
            )
            rows.append(
                f"<tr><td>{status}</td><td>{html.escape(check.description)}<br><span class='muted'>{html.escape(test.output)}</span>{hint}</td>"
                f"<td class='num'>{test.score:g} / {test.max_score:g}</td></tr>"
            )
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in result.notes)
    if result.fatal:
        notes = f"<p class='note weak'>Not graded: {html.escape(result.fatal)}</p>" + notes
    output = (
        f"<h2>What your code printed (last lines)</h2><pre>{html.escape(result.output_tail)}</pre>"
        if result.output_tail.strip()
        else ""
    )
    body = (
        f"<h1>{html.escape(rubric.title)} — feedback for {html.escape(result.student)}</h1>"
        f"<p class='score'>Score: <b>{result.score:g} / {result.max_score:g}</b>"
        + (
            f" − late penalty {result.late_penalty:g} = <b>{result.score - result.late_penalty:g}</b>"
            if result.late_penalty
            else ""
        )
        + f"</p>{notes}"
        f"<table>{''.join(rows)}</table>{output}"
        f"{_sandbox_note(result.sandbox)}<p class='muted'>Device: {html.escape(result.device)}. Grading took {result.execution_time:.1f} s.</p>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_page(f"Feedback {result.student}", body), encoding="utf-8")
    return path


def write_grades_csv(path: Path, results: list[SubmissionResult], rubric: Rubric) -> Path:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        parts = [p.id for p in rubric.parts]
        writer.writerow(["student", "score", "max_score", *parts, "late_penalty", "final", "notes"])
        for result in results:
            parts = [
                f"{sum(t.score for t in result.tests if t.part == p.id):g}" for p in rubric.parts
            ]
            notes = "; ".join(([result.fatal] if result.fatal else []) + result.notes)
            final = f"{result.score - result.late_penalty:g}"
            writer.writerow(
                [
                    result.student,
                    f"{result.score:g}",
                    f"{result.max_score:g}",
                    *parts,
                    f"{result.late_penalty:g}",
                    final,
                    notes,
                ]
            )
    return path


def write_checks_csv(path: Path, results: list[SubmissionResult], rubric: Rubric) -> Path:
    """Per student, the points of every hidden check (beside grades.csv)."""
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["student", *[c.id for c in rubric.checks]])
        for result in results:
            earned = {t.check: t.score for t in result.tests}
            writer.writerow(
                [result.student, *[f"{earned.get(c.id, 0.0):g}" for c in rubric.checks]]
            )
    return path


def board_figure(value: float | None) -> str:
    """A leaderboard figure for a table: whole numbers with separators (322,746), others to
    four significant digits (2.077, 91.25)."""
    if value is None:
        return ""
    if float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.4g}"


def _leaderboard_figure(results: list[SubmissionResult], rubric: Rubric) -> str:
    """The rubric's first two leaderboard figures against each other, one point per
    submission, with the criteria as lines (Lab 2: accuracy against latency)."""
    if len(rubric.leaderboard) < 2:
        return ""
    y_board, x_board = rubric.leaderboard[:2]
    points = [
        (r.student, r.board(x_board.name), r.board(y_board.name))
        for r in results
        if r.board(x_board.name) is not None and r.board(y_board.name) is not None
    ]
    if not points:
        return ""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    meets = [
        (
            x_board.target is None
            or (x <= x_board.target if x_board.order == "asc" else x >= x_board.target)
        )
        and (
            y_board.target is None
            or (y >= y_board.target if y_board.order == "desc" else y <= y_board.target)
        )
        for _, x, y in points
    ]
    ax.scatter(
        [x for _, x, _ in points],
        [y for _, _, y in points],
        c=["#55a868" if ok else "#c44e52" for ok in meets],
        edgecolor="black",
        linewidth=0.5,
        zorder=3,
    )
    for student, x, y in points[:40]:
        ax.annotate(student, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if x_board.target is not None:
        ax.axvline(x_board.target, color="grey", linestyle="--", label=f"{x_board.name} target")
    if y_board.target is not None:
        ax.axhline(y_board.target, color="grey", linestyle=":", label=f"{y_board.name} target")
    ax.set(
        xlabel=x_board.name,
        ylabel=y_board.name,
        title=f"Leaderboard: {sum(meets)} of {len(points)} meet both criteria (green)",
    )
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _figure(fig)


def write_class_report(
    path: Path,
    results: list[SubmissionResult],
    rubric: Rubric,
    sandbox: SandboxInfo,
    device: str,
    problems: list[str] = (),
) -> Path:
    """Where the class struggles: score histogram, pass rate per check, time per submission."""
    figures = []
    if len(results) >= FIGURES_FROM:
        plt = _pyplot()
        from matplotlib.ticker import MaxNLocator

        scores = [r.score for r in results]
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.hist(
            scores,
            bins=min(20, max(5, len(scores))),
            range=(0, rubric.total_points),
            color="#4c72b0",
            edgecolor="white",
        )
        ax.set(xlabel="score", ylabel="students", title="Score distribution")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # students come whole
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # and so do points
        figures.append(_figure(fig))

        checks = rubric.checks
        rates = [
            sum(1 for r in results for t in r.tests if t.check == c.id and t.passed) / len(results)
            for c in checks
        ]
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(checks) + 1))
        ax.barh(
            [c.id for c in checks][::-1],
            [100 * r for r in rates][::-1],
            color=["#55a868" if r >= 0.5 else "#c44e52" for r in rates][::-1],
        )
        ax.set(xlim=(0, 100), xlabel="% of students passing", title="Pass rate per check")
        figures.append(_figure(fig))

        times = [r.execution_time for r in results]
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.bar(range(len(times)), sorted(times), color="#8172b2")
        ax.set(xlabel="submissions (sorted)", ylabel="seconds", title="Grading time per submission")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        figures.append(_figure(fig))

    board = _leaderboard_figure(results, rubric)
    if board:
        figures.insert(0, f"<h2>Leaderboard</h2>{board}")

    def figure_cells(result: SubmissionResult) -> str:
        values = [result.board(board.name) for board in rubric.leaderboard]
        return "".join(f"<td class='num'>{board_figure(v)}</td>" for v in values)

    rows = "".join(
        f"<tr><td><a href='{html.escape(r.student)}/feedback.html'>{html.escape(r.student)}</a></td><td class='num'>{r.score:g} / {r.max_score:g}</td>"
        f"{figure_cells(r)}<td class='num'>{r.execution_time:.1f} s</td><td>{html.escape('; '.join(([r.fatal] if r.fatal else []) + r.notes)[:300])}</td></tr>"
        for r in results
    )
    board_heads = "".join(f"<th>{html.escape(b.name)}</th>" for b in rubric.leaderboard)
    hardest = ""
    if results:
        failing = sorted(
            (
                (sum(1 for r in results for t in r.tests if t.check == c.id and not t.passed), c)
                for c in rubric.checks
            ),
            key=lambda item: -item[0],
        )
        hardest = "".join(
            f"<li><b>{html.escape(c.id)}</b> ({html.escape(c.description)}): failed by {n} of {len(results)}</li>"
            for n, c in failing[:5]
            if n
        )
    median = statistics.median([r.score for r in results]) if results else 0
    body = (
        f"<h1>{html.escape(rubric.title)} — class report</h1>"
        f"<p>{len(results)} submissions, median score {median:g} / {rubric.total_points:g}. Device: {html.escape(device)}.</p>"
        f"{_sandbox_note(sandbox.description)}"
        + "".join(f"<p class='note weak'>{html.escape(p)}</p>" for p in problems)
        + f"<h2>Where the class struggles</h2><ul>{hardest or '<li>every check passed by everyone</li>'}</ul>"
        + (
            ""
            if figures or not results
            else f"<p class='muted'>Figures appear from {FIGURES_FROM} submissions.</p>"
        )
        + f"{''.join(figures)}<h2>Students</h2><table><tr><th>student</th><th>score</th>{board_heads}<th>time</th><th>notes</th></tr>{rows}</table>"
    )
    path.write_text(_page(f"Class report {rubric.assignment}", body), encoding="utf-8")
    return path
