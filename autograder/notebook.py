"""Reading submissions: find the graded cells by nbgrader ``grade_id``, never by position.

A submission is untrusted input. Whatever is wrong with it (invalid JSON, an
old nbformat, deleted, duplicated, reordered or retyped cells, a changed
locked cell, another kernel) becomes a note in the report; only an unreadable
file is fatal, and then only for that student. Locked cells are always taken
from ``source/``, as nbgrader does.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from autograder.rubric import Rubric
from autograder.staticcheck import _import_aliases

MAX_NOTEBOOK_BYTES = 512 * 1024 * 1024
STUB_MARKER = "raise NotImplementedError()"
MAGIC = re.compile(r"^(\s*)([%!].*)$", re.MULTILINE)


class NotebookError(ValueError):
    """The file is not a notebook we can read; the message is for the student."""


@dataclass(frozen=True)
class Cell:
    grade_id: str | None
    cell_type: str
    source: str
    locked: bool = False
    solution: bool = False
    grade: bool = False
    points: float = 0.0


@dataclass
class Answers:
    """The student's code for each answer cell, with notes on what had to be repaired."""

    cells: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # answer cell -> why it is missing
    # (label, definitions only, the answer cell it follows in the submission or None)
    added: list[tuple[str, str, str | None]] = field(default_factory=list)


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else str(source or "")


def parse_cells(raw: bytes, label: str = "notebook") -> tuple[list[Cell], dict, list[str]]:
    """Parse notebook bytes into cells. Returns (cells, notebook metadata, notes)."""
    notes: list[str] = []
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise NotebookError(
            f"the {label} is {len(raw) / 2**20:.0f} MB, over the {MAX_NOTEBOOK_BYTES // 2**20} MB limit"
        )
    if not raw.strip():
        raise NotebookError(f"the {label} is an empty file")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = (
            f" (line {exc.lineno}, column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise NotebookError(
            f"the {label} is not valid JSON{where}; was it saved correctly?"
        ) from None
    if not isinstance(data, dict):
        raise NotebookError(f"the {label} is JSON but not a notebook")
    major = data.get("nbformat")
    if major == 3 or "worksheets" in data:
        import nbformat  # only for this rare case: importing it costs a judge 1.5 s

        try:
            data = json.loads(nbformat.writes(nbformat.reads(raw.decode("utf-8"), as_version=4)))
        except Exception:
            raise NotebookError(f"the {label} uses nbformat 3 and could not be converted") from None
        notes.append("the notebook used nbformat 3; it was converted to nbformat 4")
    elif major != 4:
        raise NotebookError(f"the {label} has an unsupported nbformat version {major!r}")
    cells_raw = data.get("cells")
    if not isinstance(cells_raw, list):
        raise NotebookError(f"the {label} has no list of cells")
    cells = []
    for raw_cell in cells_raw:
        if not isinstance(raw_cell, dict):
            continue
        meta = raw_cell.get("metadata")
        nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
        nbg = nbg if isinstance(nbg, dict) else {}
        grade_id = nbg.get("grade_id") if isinstance(nbg.get("grade_id"), str) else None
        points = nbg.get("points")
        cells.append(
            Cell(
                grade_id=grade_id,
                cell_type=str(raw_cell.get("cell_type", "")),
                source=_text(raw_cell.get("source")),
                locked=bool(nbg.get("locked")),
                solution=bool(nbg.get("solution")),
                grade=bool(nbg.get("grade")),
                points=float(points) if isinstance(points, int | float) else 0.0,
            )
        )
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    return cells, metadata, notes


def read_source(path: str | Path) -> list[Cell]:
    """The instructor's notebook; errors here are the course's, so they propagate."""
    cells, _, _ = parse_cells(Path(path).read_bytes(), f"source notebook {path}")
    return cells


def strip_magics(source: str) -> str:
    """IPython line magics and shell escapes cannot run outside IPython: comment them out."""
    return MAGIC.sub(r"\1# (not run by the grader) \2", source)


def _defines(source: str, function: str) -> bool:
    return (
        re.search(rf"^\s*(def|class)\s+{re.escape(function)}\b", source, re.MULTILINE) is not None
    )


def _defined_names(node: ast.stmt) -> set[str]:
    """Names a top-level statement binds (functions, classes, assignment targets)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {t.id for t in targets if isinstance(t, ast.Name)}
    return set()


def _top_level(source: str) -> list[ast.stmt]:
    """The top-level statements of ``source`` (none when it does not parse)."""
    try:
        return ast.parse(source).body
    except (SyntaxError, ValueError):
        return []


def top_level_names(source: str) -> set[str]:
    """Names the top level of ``source`` defines (nothing when it does not parse)."""
    return set().union(*(_defined_names(node) for node in _top_level(source)))


def top_level_definitions(source: str) -> set[str]:
    """Functions and classes the top level of ``source`` defines (not its other names)."""
    kinds = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    return {node.name for node in _top_level(source) if isinstance(node, kinds)}


PURE_BUILTINS = frozenset(
    "abs all any bool dict divmod enumerate float frozenset int len list max min pow range "
    "reversed round set sorted str sum tuple zip True False None".split()
)
# Modules whose functions may compute a constant in a cell a student adds: pure
# arithmetic and PyTorch/NumPy constructors, never I/O or data loading.
PURE_MODULES = ("math", "functools", "torch", "numpy")


def _import_roots(tree: ast.Module) -> dict[str, str]:
    """Top-level names a cell's imports bind, with the module path each stands for."""
    roots: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            roots.update(_import_aliases(node))
    return roots


def _pure_value(value: ast.expr, known: dict[str, str], constants: set[str]) -> bool:
    """A constant computed from literals, earlier constants, harmless builtins and the
    functions of ``PURE_MODULES``: ``2 ** 3``, ``tuple(range(2, 4))``, ``math.sqrt(2)``,
    ``partial(nn.Conv2d, kernel_size=3)``, ``nn.ReLU``. Nothing that calls the
    student's own code, reads data or touches torch's data loading runs."""
    bound: set[str] = set()
    for node in ast.walk(value):
        if isinstance(node, ast.comprehension):
            bound |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        if isinstance(node, ast.Lambda | ast.Await | ast.Yield | ast.YieldFrom | ast.NamedExpr):
            return False
    for node in ast.walk(value):
        if isinstance(node, ast.Name):
            if node.id in bound or node.id in constants or node.id in PURE_BUILTINS:
                continue
            module = known.get(node.id)
            if module is None or module.split(".")[0] not in PURE_MODULES:
                return False
            if module.startswith(("torch.utils.data", "torch.hub", "torch.load")):
                return False
        if isinstance(node, ast.Attribute) and node.attr in ("load", "hub", "data", "save"):
            return False
    return True


def definitions_only(
    source: str,
    protected: frozenset[str] = frozenset(),
    known: dict[str, str] | None = None,
    constants: set[str] | None = None,
    dropped: list[str] | None = None,
) -> str:
    """The top-level imports, functions, classes and constants of a cell.

    Experiment code in a cell a student adds (training loops, plots) does not run
    at grading time; what graded functions may call from it does. Other lines are
    blanked, so error messages keep the student's line numbers. Definitions of a
    ``protected`` name (one an answer cell defines) are blanked too, so that an
    experiment's copy of a graded function never replaces the graded one.

    Constants are literals, or values computed from literals, earlier ``constants``
    and the pure functions of modules the notebook imports (``known``: name ->
    module, across cells); see :func:`_pure_value`. The names of assignments left
    out are appended to ``dropped``.
    """
    constants = set() if constants is None else constants
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ""
    imported = {**_import_roots(tree), **(known or {})}
    lines = source.splitlines()
    keep = [False] * len(lines)
    for node in tree.body:
        kept = isinstance(
            node,
            ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
        )
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = all(isinstance(t, ast.Name) for t in targets)
            try:
                ast.literal_eval(node.value)
                kept = names
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                kept = names and _pure_value(node.value, imported, constants)
            if kept:
                constants.update(t.id for t in targets)
            elif dropped is not None:
                dropped += [t.id for t in targets if isinstance(t, ast.Name)]
        if kept and _defined_names(node) & protected:
            kept = False
        if kept:
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            for index in range(first - 1, node.end_lineno):
                keep[index] = True
    return "\n".join(line if keep[i] else "" for i, line in enumerate(lines)).rstrip() + "\n"


def extract_answers(raw: bytes, rubric: Rubric, source: list[Cell]) -> Answers:
    """Match the submission's answer cells to the rubric's parts."""
    cells, metadata, notes = parse_cells(raw, "submission")
    answers = Answers(notes=list(notes))
    kernel = (
        (metadata.get("kernelspec") or {}).get("name")
        if isinstance(metadata.get("kernelspec"), dict)
        else None
    )
    if kernel not in (None, "python3"):
        answers.notes.append(
            f"the notebook asks for kernel '{kernel}'; it was graded with Python 3"
        )

    by_id: dict[str, list[Cell]] = {}
    for cell in cells:
        if cell.grade_id:
            by_id.setdefault(cell.grade_id, []).append(cell)
    known_ids = {cell.grade_id for cell in source if cell.grade_id}
    if by_id and not (set(by_id) & known_ids):
        raise NotebookError(
            f"this notebook does not belong to {rubric.assignment}: none of its graded cells "
            f"({', '.join(sorted(by_id)[:5])}) are cells of this assignment"
        )

    claimed: set[int] = set()
    chosen_cells: dict[str, Cell] = {}
    for part in rubric.parts:
        cell_id = part.answer_cell
        found = by_id.get(cell_id, [])
        code = [c for c in found if c.cell_type == "code"]
        if len(found) > 1:
            worked = [c for c in code if STUB_MARKER not in c.source] or code or found
            chosen = worked[-1]
            answers.notes.append(
                f"cell '{cell_id}' appears {len(found)} times; the last edited copy was graded"
            )
        elif found:
            chosen = found[0]
        else:
            chosen = None
            for index, cell in enumerate(cells):
                if (
                    index not in claimed
                    and cell.cell_type == "code"
                    and cell.grade_id is None
                    and _defines(cell.source, part.function)
                ):
                    chosen = cell
                    claimed.add(index)
                    answers.notes.append(
                        f"cell '{cell_id}' lost its nbgrader metadata; the cell that defines {part.function}() was graded instead"
                    )
                    break
        if chosen is None:
            answers.missing[cell_id] = f"cell '{cell_id}' is missing from the notebook (deleted?)"
            continue
        if chosen.cell_type != "code":
            answers.notes.append(
                f"cell '{cell_id}' was changed to a {chosen.cell_type} cell; its text was graded as code"
            )
        answers.cells[cell_id] = strip_magics(chosen.source)
        chosen_cells[cell_id] = chosen

    # Cells the student added (no grade id of this assignment, not course cells): their
    # definitions are available to the graded functions. Each runs where the student put
    # it, after the answer cell before it, so a class may subclass a graded one.
    course_code = {c.source.strip() for c in source if c.cell_type == "code"}
    protected = frozenset().union(*(top_level_names(text) for text in answers.cells.values()))
    known: dict[str, str] = {}
    for cell in [*source, *cells]:
        if cell.cell_type == "code" and (cell.grade_id in rubric.setup_cells or not cell.locked):
            try:
                known.update(_import_roots(ast.parse(strip_magics(cell.source))))
            except (SyntaxError, ValueError):
                pass
    constants: set[str] = set()
    dropped: list[str] = []
    answer_of = {id(cell): cell_id for cell_id, cell in chosen_cells.items()}
    after = None
    for index, cell in enumerate(cells):
        if id(cell) in answer_of:
            after = answer_of[id(cell)]
            continue
        if (
            cell.cell_type != "code"
            or index in claimed
            or cell.grade_id in known_ids
            or cell.source.strip() in course_code
        ):
            continue
        kept = definitions_only(strip_magics(cell.source), protected, known, constants, dropped)
        if kept.strip():
            answers.added.append((f"added cell {len(answers.added) + 1}", kept, after))
    if answers.added:
        answers.notes.append(
            f"{len(answers.added)} cell(s) you added ran for their definitions only "
            "(imports, functions, classes, constants)"
        )
    skipped = [name for name in dict.fromkeys(dropped) if name not in protected]
    if skipped:
        shown = ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        answers.notes.append(
            f"in cells you added, these assignments did not run at grading time (only "
            f"constants do, not experiment results): {shown}"
        )

    for cell in source:
        if cell.locked and cell.grade_id and cell.cell_type == "code":
            theirs = by_id.get(cell.grade_id)
            if theirs and theirs[0].source.strip() != cell.source.strip():
                answers.notes.append(
                    f"locked cell '{cell.grade_id}' was modified; the original was used"
                )
    return answers


def build_program(rubric: Rubric, source: list[Cell], answers: Answers) -> list[dict]:
    """The cells the sandbox runs, in the source notebook's order.

    Setup cells come from the source (trusted); answer cells from the student. The
    definitions of the cells the student added run where the student put them: right
    after the answer cell before them (before the first answer cell when none is).
    """
    program = []
    placed: set[str] = set()

    def added_after(cell_id: str | None) -> list[dict]:
        cells = [(label, text) for label, text, after in answers.added if after == cell_id]
        placed.update(label for label, _ in cells)
        return [{"id": label, "source": text} for label, text in cells]

    first = True
    for cell in source:
        if cell.grade_id in rubric.setup_cells:
            program.append({"id": cell.grade_id, "source": strip_magics(cell.source)})
        elif cell.grade_id in answers.cells:
            if first:
                program += added_after(None)
                first = False
            program.append({"id": cell.grade_id, "source": answers.cells[cell.grade_id]})
            program += added_after(cell.grade_id)
    program += [
        {"id": label, "source": text} for label, text, _ in answers.added if label not in placed
    ]
    return program
