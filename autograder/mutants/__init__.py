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


@dataclass(frozen=True)
class Mutant:
    name: str
    description: str
    cell: str
    replace: tuple[tuple[str, str], ...]
    loses: tuple[str, ...]
    demo: bool = False


def load_mutants(assignment: str) -> list[Mutant]:
    path = HERE / f"{assignment}.yaml"
    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text()) or {}
    return [
        Mutant(
            name=raw["name"],
            description=raw["description"],
            cell=raw["cell"],
            replace=tuple((old, new) for old, new in raw["replace"]),
            loses=tuple(raw["loses"]),
            demo=bool(raw.get("demo", False)),
        )
        for raw in data.get("mutants", [])
    ]


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
