"""Rubrics: points, tolerances, messages, forbidden APIs and limits, declared once.

``rubrics/<assignment>.yaml`` is parsed into the frozen dataclasses below and
validated; everything else (the judge, the reports, the gradebook, the tests
that check agreement with the notebook) reads these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


class RubricError(ValueError):
    """The rubric file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission's sandboxed child."""

    cpu_seconds: int = 120
    memory_mb: int = 3072
    processes: int = 32
    file_size_mb: int = 16
    tmp_mb: int = 256
    cell_cpu_seconds: float = 30.0  # per cell; the wall clock is 3x that + 10 s
    call_cpu_seconds: float = 20.0  # per call a hidden test makes; likewise
    submission_seconds: float = 300.0  # wall clock for the whole submission
    startup_seconds: float = 60.0


@dataclass(frozen=True)
class Forbidden:
    """APIs a from-scratch part may not use: dotted names (static) and ATen ops (run time)."""

    names: tuple[str, ...] = ()
    ops: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    id: str
    part: str
    points: float
    description: str
    hint: str = ""
    rtol: float = 1e-4
    atol: float = 1e-4
    cpu_seconds: float | None = None  # per call; overrides limits.call_cpu_seconds


@dataclass(frozen=True)
class Part:
    """One graded TODO: an answer cell, its visible-check cell and its hidden checks."""

    id: str
    title: str
    answer_cell: str
    check_cell: str
    function: str
    checks: tuple[Check, ...]
    forbidden: Forbidden | None = None
    # Why the part's output has no reference to be 1% off from (a free architecture, trained
    # weights): the tolerance-policy test then leaves it out. Empty for every oracle-checked part.
    scale_free: str = ""

    @property
    def points(self) -> float:
        return sum(check.points for check in self.checks)


# A weights file travels to the sandbox inside one control frame (64 MB).
MAX_WEIGHTS_MB = 48


@dataclass(frozen=True)
class Weights:
    """A file the student submits beside the notebook: ``submitted/<s>/<id>/<file>``, or
    ``<s>.pt`` beside ``<s>.ipynb`` in a flat folder. The hidden tests load it in the sandbox."""

    file: str = "model.pt"
    max_mb: float = 20.0

    @property
    def suffix(self) -> str:
        return Path(self.file).suffix or ".pt"


@dataclass(frozen=True)
class Board:
    """A figure a hidden test records for the class leaderboard (Gradescope's ``leaderboard``)."""

    name: str
    order: str = "desc"  # "desc": higher is better; "asc": lower is better
    target: float | None = None  # the criterion, drawn as a line in the class report


@dataclass(frozen=True)
class Rubric:
    assignment: str
    title: str
    notebook: str
    setup_cells: tuple[str, ...]
    files: tuple[str, ...]
    limits: Limits
    parts: tuple[Part, ...]
    path: Path | None = field(default=None, compare=False)
    weights: Weights | None = None
    leaderboard: tuple[Board, ...] = ()
    cpu_only: bool = False  # graded on the CPU whatever --device says (a CPU latency part)

    @property
    def checks(self) -> tuple[Check, ...]:
        return tuple(check for part in self.parts for check in part.checks)

    @property
    def total_points(self) -> float:
        return sum(part.points for part in self.parts)

    def part(self, part_id: str) -> Part:
        for part in self.parts:
            if part.id == part_id:
                return part
        raise KeyError(part_id)

    def check(self, check_id: str) -> Check:
        for check in self.checks:
            if check.id == check_id:
                return check
        raise KeyError(check_id)


def _require(mapping: dict, key: str, where: str) -> Any:
    if key not in mapping:
        raise RubricError(f"{where}: missing '{key}'")
    return mapping[key]


def _limits(raw: dict | None, where: str) -> Limits:
    raw = raw or {}
    known = {f.name: f.type for f in fields(Limits)}
    unknown = set(raw) - set(known)
    if unknown:
        raise RubricError(f"{where}: unknown limits {sorted(unknown)}")
    values = {}
    for key, value in raw.items():
        if not isinstance(value, int | float) or value <= 0:
            raise RubricError(f"{where}: limit '{key}' must be a positive number, got {value!r}")
        values[key] = value
    return Limits(**values)


def _weights(raw: Any, where: str) -> Weights | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"file", "max_mb"}:
        raise RubricError(f"{where}: 'weights' takes 'file' and 'max_mb'")
    name = str(raw.get("file", "model.pt"))
    if "/" in name or name.startswith(".") or not name:
        raise RubricError(f"{where}: weights file {name!r} must be a plain file name")
    size = raw.get("max_mb", 20.0)
    if not isinstance(size, int | float) or not 0 < size <= MAX_WEIGHTS_MB:
        raise RubricError(f"{where}: weights max_mb must be in (0, {MAX_WEIGHTS_MB}], got {size!r}")
    return Weights(file=name, max_mb=float(size))


def _leaderboard(raw: Any, where: str) -> tuple[Board, ...]:
    boards = []
    for entry in raw or ():
        if (
            not isinstance(entry, dict)
            or "name" not in entry
            or set(entry) - {"name", "order", "target"}
        ):
            raise RubricError(f"{where}: a leaderboard entry takes 'name', 'order' and 'target'")
        order = entry.get("order", "desc")
        if order not in ("asc", "desc"):
            raise RubricError(f"{where}: leaderboard order must be 'asc' or 'desc', got {order!r}")
        target = entry.get("target")
        if target is not None and not isinstance(target, int | float):
            raise RubricError(f"{where}: leaderboard target must be a number, got {target!r}")
        boards.append(Board(str(entry["name"]), order, None if target is None else float(target)))
    return tuple(boards)


def _forbidden(raw: dict | None) -> Forbidden | None:
    if raw is None:
        return None
    return Forbidden(names=tuple(raw.get("names", ())), ops=tuple(raw.get("ops", ())))


def _check(raw: dict, part: str, where: str) -> Check:
    check_id = _require(raw, "id", where)
    where = f"{where} check '{check_id}'"
    points = _require(raw, "points", where)
    if not isinstance(points, int | float) or points <= 0:
        raise RubricError(f"{where}: points must be positive, got {points!r}")
    rtol, atol = float(raw.get("rtol", 1e-4)), float(raw.get("atol", 1e-4))
    if rtol < 0 or atol < 0:
        raise RubricError(f"{where}: tolerances must be >= 0")
    return Check(
        id=check_id,
        part=part,
        points=float(points),
        description=_require(raw, "description", where),
        hint=raw.get("hint", ""),
        rtol=rtol,
        atol=atol,
        cpu_seconds=raw.get("cpu_seconds"),
    )


def parse_rubric(data: dict, path: Path | None = None) -> Rubric:
    where = str(path or "rubric")
    if not isinstance(data, dict):
        raise RubricError(f"{where}: expected a mapping at the top level")
    default_forbidden = _forbidden(data.get("forbidden"))
    parts = []
    for raw_part in _require(data, "parts", where):
        part_id = _require(raw_part, "id", where)
        part_where = f"{where} part '{part_id}'"
        forbidden = None
        if raw_part.get("from_scratch"):
            forbidden = _forbidden(raw_part.get("forbidden")) or default_forbidden
            if forbidden is None:
                raise RubricError(f"{part_where}: from_scratch needs a 'forbidden' list")
        checks = tuple(
            _check(raw, part_id, part_where) for raw in _require(raw_part, "checks", part_where)
        )
        if not checks:
            raise RubricError(f"{part_where}: no checks")
        parts.append(
            Part(
                id=part_id,
                title=raw_part.get("title", part_id),
                answer_cell=raw_part.get("answer_cell", part_id),
                check_cell=raw_part.get("check_cell", f"check_{part_id}"),
                function=raw_part.get("function", part_id),
                checks=checks,
                forbidden=forbidden,
                scale_free=str(raw_part.get("scale_free", "")).strip(),
            )
        )
    rubric = Rubric(
        assignment=_require(data, "assignment", where),
        title=data.get("title", data["assignment"]),
        notebook=data.get("notebook", f"{data['assignment']}.ipynb"),
        setup_cells=tuple(data.get("setup_cells", ())),
        files=tuple(data.get("files", ())),
        limits=_limits(data.get("limits"), where),
        parts=tuple(parts),
        path=path,
        weights=_weights(data.get("weights"), where),
        leaderboard=_leaderboard(data.get("leaderboard"), where),
        cpu_only=bool(data.get("cpu_only", False)),
    )
    for label, ids in (
        ("part", [p.id for p in rubric.parts]),
        ("check", [c.id for c in rubric.checks]),
        ("answer cell", [p.answer_cell for p in rubric.parts]),
    ):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise RubricError(f"{where}: duplicate {label} ids {duplicates}")
    return rubric


def load_rubric(path: str | Path) -> Rubric:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RubricError(f"no rubric at {path}") from None
    except yaml.YAMLError as exc:
        raise RubricError(f"{path}: invalid YAML: {exc}") from None
    return parse_rubric(data, path)
