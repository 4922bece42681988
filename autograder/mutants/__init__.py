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
