"""Wrong-but-plausible submissions, derived from the source solution by text replacement.

``autograder/mutants/<assignment>.yaml`` lists them; the tests check that each
loses exactly the checks it declares, and the demo grades the one marked ``demo``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


# What a test submission puts beside its notebook where the rubric takes a weights file
# (tests/test_assignments.py makes each from the solution's trained weights).
WEIGHTS_KINDS = ("solution", "untrained", "missing", "corrupt", "checkpoint", "pickled_model")


@dataclass(frozen=True)
class Mutant:
    name: str
    description: str
    cell: str | None  # None: the notebook is the solution's; only the weights differ
    replace: tuple[tuple[str, str], ...]
    loses: tuple[str, ...]
    demo: bool = False
    weights: str = "solution"


def load_mutants(assignment: str) -> list[Mutant]:
    path = HERE / f"{assignment}.yaml"
    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text()) or {}
    mutants = [
        Mutant(
            name=raw["name"],
            description=raw["description"],
            cell=raw.get("cell"),
            replace=tuple((old, new) for old, new in raw.get("replace", ())),
            loses=tuple(raw["loses"]),
            demo=bool(raw.get("demo", False)),
            weights=raw.get("weights", "solution"),
        )
        for raw in data.get("mutants", [])
    ]
    for mutant in mutants:
        if mutant.weights not in WEIGHTS_KINDS:
            raise ValueError(
                f"{path}: mutant {mutant.name}: weights must be one of {WEIGHTS_KINDS}"
            )
        if (mutant.cell is None) != (not mutant.replace):
            raise ValueError(f"{path}: mutant {mutant.name}: 'cell' and 'replace' go together")
    return mutants


def solution_weights_builder(assignment: str) -> str | None:
    """``module:function`` that trains the weights the tests submit with the solution."""
    path = HERE / f"{assignment}.yaml"
    if not path.exists():
        return None
    return (yaml.safe_load(path.read_text()) or {}).get("solution_weights")


def edit_cell(notebook: Path, grade_id: str, edit) -> bytes:
    """The notebook's bytes with ``edit(source) -> source`` applied to one cell."""
    data = json.loads(notebook.read_text())
    for cell in data["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = edit(source)
            return (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode()
    raise KeyError(f"{notebook} has no cell '{grade_id}'")


def apply_mutant(notebook: Path, mutant: Mutant) -> bytes:
    if mutant.cell is None:
        return notebook.read_bytes()

    def edit(source: str) -> str:
        for old, new in mutant.replace:
            if old not in source:
                raise ValueError(f"mutant {mutant.name}: {old!r} is not in cell '{mutant.cell}'")
            source = source.replace(old, new)
        return source

    return edit_cell(notebook, mutant.cell, edit)


@dataclass(frozen=True)
class Lazy:
    """A submission that does no work (zeros, constants, the input, noise): it must earn 0.

    ``bodies`` maps answer cells to the code that replaces their solution block
    (between ``### BEGIN SOLUTION`` and ``### END SOLUTION``), indented as written.
    """

    name: str
    description: str
    bodies: tuple[tuple[str, str], ...]


def load_lazy(assignment: str) -> list[Lazy]:
    path = HERE / f"{assignment}.yaml"
    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text()) or {}
    return [
        Lazy(raw["name"], raw["description"], tuple(raw["bodies"].items()))
        for raw in data.get("lazy", [])
    ]


def apply_lazy(notebook: Path, lazy: Lazy) -> bytes:
    """Replace every solution block of the named cells; the rest of each cell stays."""
    data = json.loads(notebook.read_text())
    bodies = dict(lazy.bodies)
    for cell in data["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id not in bodies:
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        pieces = source.split("### BEGIN SOLUTION")
        if len(pieces) < 2:
            raise ValueError(f"lazy {lazy.name}: cell '{grade_id}' has no solution block")
        out = pieces[0]
        for index, piece in enumerate(pieces[1:]):
            _, rest = piece.split("### END SOLUTION", 1)
            indent = out[len(out.rstrip(" ")) :]
            body = bodies[grade_id] if index == 0 else "pass"
            lines = body.strip("\n").splitlines()
            out += "### BEGIN SOLUTION\n" + "\n".join(indent + line for line in lines)
            out += "\n" + indent + "### END SOLUTION" + rest
        cell["source"] = out
        del bodies[grade_id]
    if bodies:
        raise ValueError(f"lazy {lazy.name}: no cells {sorted(bodies)}")
    return (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode()


# --------------------------------------------------------------------------- tolerance policy

_SCALING_HELPERS = """

def _policy_scale(value):
    dtype = getattr(value, "dtype", None)
    if dtype is not None and hasattr(value, "shape"):  # a tensor or an array, no imports needed
        kind = getattr(dtype, "kind", None)
        if kind is None:
            floating = dtype.is_floating_point or dtype.is_complex
            boolean = str(dtype) == "torch.bool"
        else:
            floating, boolean = kind in "fc", kind == "b"
        if floating:
            return value * _POLICY[0]
        return value if boolean else value + _POLICY[1]
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value * _POLICY[0]
    if isinstance(value, int):
        return value + _POLICY[1]
    if isinstance(value, (tuple, list)):
        return type(value)(_policy_scale(item) for item in value)
    if isinstance(value, dict):
        return {key: _policy_scale(item) for key, item in value.items()}
    return value


def _policy_call(function, args, kwargs):
    _POLICY_DEPTH[0] += 1
    try:
        out = function(*args, **kwargs)
    finally:
        _POLICY_DEPTH[0] -= 1
    return out if _POLICY_DEPTH[0] else _policy_scale(out)
"""


def apply_scaling(notebook: Path, rubric, factor: float, shift: int = 0) -> bytes:
    """Every graded function's (or module's ``forward``) outputs scaled, as the tolerance policy says.

    Floating outputs are multiplied by ``factor`` and integer outputs shifted by
    ``shift``; booleans and non-numeric values are left alone. Only the outermost
    graded call is scaled, so a U-Net built from graded blocks is off by one
    factor, not by a power of it. ``(1 + 1e-6, 0)`` is float32 rounding in a
    float64 pipeline and must keep every point; ``(1.01, 1)`` is a real bug and
    must lose a check in every part.
    """
    data = json.loads(notebook.read_text())
    parts = {part.answer_cell: part for part in rubric.parts}
    first = True
    for cell in data["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        part = parts.pop(grade_id, None)
        if part is None:
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        name = part.function
        snippet = ""
        if first:
            snippet += f"\n\n_POLICY = ({factor!r}, {shift!r})\n_POLICY_DEPTH = [0]\n"
            snippet += _SCALING_HELPERS
            first = False
        snippet += (
            f"\n\nif isinstance({name}, type):\n"
            f"    _policy_{name}_forward = {name}.forward\n\n"
            f"    def _policy_{name}_scaled(self, *args, **kwargs):\n"
            f"        return _policy_call(_policy_{name}_forward, (self, *args), kwargs)\n\n"
            f"    {name}.forward = _policy_{name}_scaled\n"
            f"else:\n"
            f"    _policy_{name} = {name}\n\n"
            f"    def {name}(*args, **kwargs):\n"
            f"        return _policy_call(_policy_{name}, args, kwargs)\n"
        )
        cell["source"] = source.rstrip("\n") + snippet
    if parts:
        raise ValueError(f"no answer cells {sorted(parts)} in {notebook}")
    return (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode()
