"""`python -m autograder overview DIR [DIR ...] --out OUT`: the course at a glance.

Reads the ``--out`` folders of any number of graded assignments (their
``<student>/results.json``) and writes ``OUT/overview.html`` (per-student totals,
per-assignment score distributions, per-check pass rates, who needs help, links
to every report and feedback page) and ``OUT/overview.csv`` (one row per
student with columns an LMS import accepts).

Who needs help, the rule the page states: a student whose total is below half of
the points they could have had, or who failed at least two checks of the same
graded part (one concept, such as padding in conv2d or the PGD projection).
"""

from __future__ import annotations

import csv
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from autograder.course import Course
from autograder.results import SubmissionResult, read_results

HELP_FRACTION = 0.5  # below this share of the reachable points: needs help
HELP_CHECKS = 2  # this many failed checks of one part: a concept to revisit


@dataclass
class Graded:
    """One assignment's graded folder."""

    assignment: str
    folder: Path
    results: dict[str, SubmissionResult] = field(default_factory=dict)
    max_score: float = 0.0
    checks: list[tuple[str, str, str]] = field(default_factory=list)  # (check, part title, text)
    unread: list[str] = field(default_factory=list)


def _final(result: SubmissionResult) -> float:
    return result.score - result.late_penalty


def read_graded(folder: Path, course: Course) -> Graded:
    """The results in one ``grade --out`` folder (ValueError when there are none)."""
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder")
    paths = sorted(folder.glob("*/results.json"))
    results, unread = {}, []
    for path in paths:
        result = read_results(path)
        if result is None:
            unread.append(str(path))
        else:
            results[result.student or path.parent.name] = result
    if not results:
        raise ValueError(
            f"{folder}: no graded submissions (no <student>/results.json); give the --out "
            "folder of a `grade` run"
        )
    names = {r.assignment for r in results.values()}
    if len(names) > 1:
        raise ValueError(f"{folder}: results of several assignments ({', '.join(sorted(names))})")
    assignment = names.pop()
    graded = Graded(assignment, folder, results, unread=unread)
    graded.max_score = max(r.max_score for r in results.values())
    try:
        from autograder.rubric import load_rubric

        rubric = load_rubric(course.rubric_path(assignment))
        graded.checks = [
            (check.id, part.title, check.description)
            for part in rubric.parts
            for check in part.checks
        ]
        graded.max_score = rubric.total_points
    except (OSError, ValueError):  # graded elsewhere: the results name their checks
        first = next(iter(results.values()))
        graded.checks = [(t.check, t.part, t.name) for t in first.tests]
    return graded


def people(urls: list[str]) -> dict[str, dict[str, str]]:
    """Names and e-mail addresses of students, from nbgrader gradebooks."""
    found: dict[str, dict[str, str]] = {}
    if not urls:
        return found
    from autograder.config import import_nbgrader

    api = import_nbgrader("nbgrader.api")
    for url in urls:
        try:
            with api.Gradebook(url) as book:
                for student in book.students:
                    name = " ".join(p for p in (student.first_name, student.last_name) if p)
                    entry = found.setdefault(student.id, {"name": "", "email": ""})
                    entry["name"] = entry["name"] or name
                    entry["email"] = entry["email"] or (student.email or "")
        except Exception as exc:  # a gradebook we cannot read only costs the names
            print(f"WARNING: gradebook {url} could not be read ({type(exc).__name__})")
    return found


def needs_help(graded: list[Graded], students: list[str]) -> list[tuple[str, list[str]]]:
    """``[(student, reasons)]`` by the rule in the module docstring, lowest total first."""
    flagged = []
    for student in students:
        reasons = []
        reachable = sum(g.max_score for g in graded if student in g.results)
        total = sum(_final(g.results[student]) for g in graded if student in g.results)
        if reachable and total < HELP_FRACTION * reachable:
            reasons.append(f"total {total:g} of {reachable:g} points")
        for g in graded:
            result = g.results.get(student)
            if result is None:
                reasons.append(f"no submission for {g.assignment}")
                continue
            titles = {check: title for check, title, _ in g.checks}
            failed: dict[str, int] = {}
            for test in result.tests:
                if not test.passed:
                    part = titles.get(test.check, test.part)
                    failed[part] = failed.get(part, 0) + 1
            reasons += [
                f"{g.assignment}: {n} checks of '{part}' failed"
                for part, n in failed.items()
                if n >= HELP_CHECKS
            ]
        if reasons:
            flagged.append((total / reachable if reachable else 0.0, student, reasons))
    return [(student, reasons) for _, student, reasons in sorted(flagged)]


def _histogram(graded: Graded) -> str:
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(4.2, 2.4))
    ax.hist(
        [_final(r) for r in graded.results.values()],
        bins=min(20, max(5, len(graded.results))),
        range=(0, graded.max_score or 1),
        color="#4c72b0",
        edgecolor="white",
    )
    ax.set(xlabel="score", ylabel="students", title=graded.assignment)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<img alt='score distribution of {html.escape(graded.assignment)}' src='data:image/png;base64,{data}'>"


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}td,th{border-bottom:1px solid #eee;padding:.3em .5em;text-align:left;vertical-align:top}
.num{white-space:nowrap;text-align:right}.missing{color:#999}.low{color:#cf222e;font-weight:600}
.bar{display:inline-block;height:.8em;background:#55a868;vertical-align:middle}.bad{background:#c44e52}
.grid{display:flex;flex-wrap:wrap;gap:1em}.muted{color:#666}.note{background:#fff8c5;padding:.4em .7em;border-radius:4px}
"""


def write_overview(
    graded_dirs: list[Path],
    out: Path,
    *,
    gradebook: str | None = None,
    course: Course | None = None,
) -> dict[str, Path]:
    """Write OUT/overview.html and OUT/overview.csv for the graded folders given."""
    course = course or Course.here()
    graded = [read_graded(Path(folder), course) for folder in graded_dirs]
    seen: dict[str, Path] = {}
    for g in graded:
        if g.assignment in seen:
            raise ValueError(
                f"{seen[g.assignment]} and {g.folder} both hold {g.assignment}: give one folder "
                "per assignment"
            )
        seen[g.assignment] = g.folder
    graded.sort(key=lambda g: g.assignment)
    out.mkdir(parents=True, exist_ok=True)
    urls = [gradebook] if gradebook else []
    urls += [
        f"sqlite:///{g.folder / 'gradebook.db'}"
        for g in graded
        if (g.folder / "gradebook.db").is_file()
    ]
    names = people(urls)
    students = sorted({s for g in graded for s in g.results})
    max_total = sum(g.max_score for g in graded)

    def link(target: Path, text: str) -> str:
        href = os.path.relpath(target.resolve(), out.resolve())
        return f"<a href='{html.escape(href)}'>{text}</a>"

    # ------------------------------------------------------------------ csv
    has_names = any(v["name"] for v in names.values())
    has_emails = any(v["email"] for v in names.values())
    header = ["student_id"] + (["name"] if has_names else []) + (["email"] if has_emails else [])
    header += [g.assignment for g in graded] + ["total", "max_total"]
    header += [f"{g.assignment}:{check}" for g in graded for check, _, _ in g.checks]
    with (out / "overview.csv").open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        for student in students:
            person = names.get(student, {"name": "", "email": ""})
            row = [student] + ([person["name"]] if has_names else [])
            row += [person["email"]] if has_emails else []
            row += [
                f"{_final(g.results[student]):g}" if student in g.results else "" for g in graded
            ]
            total = sum(_final(g.results[student]) for g in graded if student in g.results)
            row += [f"{total:g}", f"{max_total:g}"]
            for g in graded:
                scores = (
                    {t.check: t.score for t in g.results[student].tests}
                    if student in g.results
                    else {}
                )
                row += [f"{scores[c]:g}" if c in scores else "" for c, _, _ in g.checks]
            writer.writerow(row)

    # ------------------------------------------------------------------ html
    head = "".join(
        f"<th class='num'>{link(g.folder / 'report.html', html.escape(g.assignment))}<br>"
        f"<span class='muted'>/ {g.max_score:g}</span></th>"
        for g in graded
    )
    rows = []
    for student in students:
        cells = []
        for g in graded:
            result = g.results.get(student)
            if result is None:
                cells.append(
                    "<td class='num missing' title='no submission: counted as 0'>missing</td>"
                )
                continue
            score = _final(result)
            low = " low" if g.max_score and score < HELP_FRACTION * g.max_score else ""
            text = link(g.folder / student / "feedback.html", f"{score:g}")
            cells.append(f"<td class='num{low}'>{text}</td>")
        total = sum(_final(g.results[student]) for g in graded if student in g.results)
        missing = sum(student not in g.results for g in graded)
        mark = f" <span class='missing'>({missing} missing)</span>" if missing else ""
        person = names.get(student, {}).get("name", "")
        rows.append(
            f"<tr><td>{html.escape(student)}</td><td>{html.escape(person)}</td>{''.join(cells)}"
            f"<td class='num'><b>{total:g}</b> / {max_total:g}{mark}</td></tr>"
        )
    rates = []
    for g in graded:
        lines = []
        for check, part, text in g.checks:
            passed = sum(
                1 for r in g.results.values() for t in r.tests if t.check == check and t.passed
            )
            share = passed / len(g.results)
            bad = " bad" if share < 0.5 else ""
            lines.append(
                f"<tr><td>{html.escape(part)}</td><td>{html.escape(text)}</td>"
                f"<td class='num'>{100 * share:.0f}% <span class='bar{bad}' style='width:{share * 120:.0f}px'></span></td></tr>"
            )
        rates.append(
            f"<h3>{html.escape(g.assignment)} ({len(g.results)} graded)</h3>"
            f"<table><tr><th>part</th><th>check</th><th>passing</th></tr>{''.join(lines)}</table>"
        )
    flagged = needs_help(graded, students)
    help_rows = "".join(
        f"<tr><td>{html.escape(student)}</td><td>{'<br>'.join(html.escape(r) for r in reasons)}</td></tr>"
        for student, reasons in flagged
    )
    unread = [path for g in graded for path in g.unread]
    body = (
        f"<h1>Course overview</h1><p>{len(students)} students, {len(graded)} assignments, "
        f"{max_total:g} points in all. Scores are after late penalties; a missing submission "
        "counts as 0 in the total. Click a score for the student's feedback, an assignment "
        "for its class report.</p>"
        + "".join(f"<p class='note'>Not read: {html.escape(p)}</p>" for p in unread)
        + "<h2>Who needs help</h2>"
        f"<p class='muted'>Rule: a total below {HELP_FRACTION:.0%} of the points the student "
        f"could have had, or at least {HELP_CHECKS} failed checks of one graded part (a concept "
        "to revisit), or a missing submission. Lowest share first.</p>"
        + (
            f"<table><tr><th>student</th><th>why</th></tr>{help_rows}</table>"
            if help_rows
            else "<p>Nobody by this rule.</p>"
        )
        + "<h2>Students</h2>"
        f"<table><tr><th>student</th><th>name</th>{head}<th class='num'>total</th></tr>{''.join(rows)}</table>"
        + "<h2>Score distributions</h2><div class='grid'>"
        + "".join(_histogram(g) for g in graded)
        + "</div><h2>Pass rate per check</h2>"
        + "".join(rates)
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Course overview</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
    )
    (out / "overview.html").write_text(page, encoding="utf-8")
    return {"overview": out / "overview.html", "csv": out / "overview.csv"}
