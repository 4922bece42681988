"""nbgrader's ``autograded/<student>/<id>/<notebook>.ipynb``, for formgrader and feedback.

nbgrader's formgrader (manual grading) and ``nbgrader generate_feedback`` read
the autograded notebook beside the gradebook. This grader never runs student
code in the trusted process, so the notebook is assembled, not executed: the
released notebook's structure and read-only cells (trusted), the student's code
in each answer cell and the cells they added, and, as the output of every
visible-check cell, what the hidden checks of that part found. The student's
own saved outputs are dropped: they are whatever the file says, not what ran.

Which tool owns the grade cells: for an assignment with a rubric, this grader.
Its notebooks carry ``metadata.autograder``; a folder without that mark was
written by ``nbgrader autograde``, and ``grade`` refuses to replace it unless
``--force`` is given. ``nbgrader autograde`` in turn skips every folder that
exists, ours included, unless it is given ``--force``.
"""

from __future__ import annotations

import json
import os
import tempfile
import textwrap
from pathlib import Path

from autograder.gradebook import comment_text
from autograder.notebook import NotebookError, parse_cells
from autograder.results import SubmissionResult, clean
from autograder.rubric import Rubric

MARK = "autograder"


def _lines(text: str) -> list[str]:
    """Notebook source lines, as valid UTF-8 (a submission may hold lone surrogates)."""
    return clean(text).splitlines(keepends=True)


def build(release: dict, raw: bytes | None, result: SubmissionResult, rubric: Rubric) -> dict:
    """The autograded notebook for ``result`` (``raw``: the submitted file, or None)."""
    try:
        cells, _, _ = parse_cells(raw, "submission") if raw is not None else ([], {}, [])
        unread = ""
    except NotebookError as exc:
        cells, unread = [], str(exc)
    by_id = {cell.grade_id: cell for cell in cells if cell.grade_id}
    release_ids = {
        (c.get("metadata") or {}).get("nbgrader", {}).get("grade_id") for c in release["cells"]
    } - {None}
    release_plain = {
        "".join(c.get("source", "")) if isinstance(c.get("source"), list) else c.get("source", "")
        for c in release["cells"]
    }
    added: dict[str | None, list] = {}
    anchor = None
    for cell in cells:
        if cell.grade_id in release_ids:
            anchor = cell.grade_id
        elif cell.source.strip() and cell.source not in release_plain:
            added.setdefault(anchor, []).append(cell)
    checks = {part.check_cell: part for part in rubric.parts}
    out_cells = []

    def extra(cell) -> dict:
        base = {"cell_type": cell.cell_type, "metadata": {}, "source": _lines(cell.source)}
        if cell.cell_type == "code":
            base.update(outputs=[], execution_count=None)
        elif cell.cell_type not in ("markdown", "raw"):
            base["cell_type"] = "raw"
        return base

    out_cells += [extra(c) for c in added.get(None, [])]
    for original in release["cells"]:
        cell = json.loads(json.dumps(original))
        meta = (cell.get("metadata") or {}).get("nbgrader") or {}
        gid = meta.get("grade_id")
        if meta.get("solution") and gid:
            mine = by_id.get(gid)
            if mine is not None and mine.cell_type == cell["cell_type"]:
                cell["source"] = _lines(mine.source)
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
        if gid in checks:
            tests = [t for t in result.tests if t.part == checks[gid].id]
            text = comment_text(tests) if tests else f"Not graded: {result.fatal or unread}"
            text = "\n".join(  # an output cell does not wrap: keep lines readable
                textwrap.fill(line, 100, subsequent_indent="    ") for line in text.splitlines()
            )
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": text + "\n"}]
        out_cells.append(cell)
        if gid:
            out_cells += [extra(c) for c in added.get(gid, [])]
    notebook = json.loads(json.dumps({k: v for k, v in release.items() if k != "cells"}))
    notebook["cells"] = out_cells
    notebook.setdefault("metadata", {})[MARK] = {
        "graded_by": "python -m autograder grade",
        "submission_sha256": result.sha256,
        "score": result.score,
        "max_score": result.max_score,
        **({"submission_unreadable": unread} if unread else {}),
    }
    return notebook


def write(folder: Path, name: str, notebook: dict) -> Path:
    """``folder/name`` by atomic rename."""
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".ipynb")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump(notebook, stream, indent=1, ensure_ascii=False)
        stream.write("\n")
    target = folder / name
    os.replace(temporary, target)
    return target


def owner(folder: Path, name: str) -> str | None:
    """Who wrote ``folder`` (an autograded submission): 'autograder', 'nbgrader' or None."""
    if not folder.is_dir():
        return None
    path = folder / name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if MARK in data.get("metadata", {}):
            return "autograder"
    except (OSError, ValueError, AttributeError):
        pass
    return "nbgrader" if any(folder.iterdir()) else None
