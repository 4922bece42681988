"""The static half of the from-scratch rule, run on student source in the trusted process.

It resolves import aliases (``import torch.nn.functional as F`` then ``F.conv2d``)
to dotted names and reports uses of forbidden APIs. It also reports escape
hatches that could hide a call from both this scan and the run-time trace
(``importlib``, ``__import__``, ``eval``, ``getattr`` with a computed name,
``torch.ops``, ``torch._C``, dispatch modes ...). The run-time half is the ATen
operator trace in ``child/probes.py``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

ESCAPE_NAMES = (
    "importlib",
    "__import__",
    "eval",
    "exec",
    "compile",
    "globals",
    "vars",
    "locals",
    "sys.modules",
    "builtins",
    "__builtins__",
    "ctypes",
    "gc",
    "inspect",
    "torch.ops",
    "torch._C",
    "torch._ops",
    "torch.overrides",
    "torch.utils._python_dispatch",
    "torch.library",
    "torch._refs",
    "torch._decomp",
    "torch.func",
)
ESCAPE_ATTRIBUTES = (
    "__dict__",
    "__getattribute__",
    "__subclasses__",
    "__globals__",
    "__code__",
    "__wrapped__",
    "_C",
    "ops",
)


@dataclass(frozen=True)
class Finding:
    cell: str
    line: int
    name: str
    escape: bool  # True: a way around the checks, False: a forbidden API itself

    def describe(self) -> str:
        what = (
            "which could hide a forbidden call"
            if self.escape
            else "which this from-scratch task forbids"
        )
        return f"cell '{self.cell}' line {self.line} uses {self.name}, {what}"


class _Resolver(ast.NodeVisitor):
    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.uses: list[tuple[int, str]] = []
        self.getattr_names: list[tuple[int, str | None]] = []

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.aliases[top] = top
            self.uses.append((node.lineno, alias.name))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        for alias in node.names:
            full = f"{module}.{alias.name}" if module else alias.name
            self.aliases[alias.asname or alias.name] = full
            self.uses.append((node.lineno, full))

    def dotted(self, node: ast.AST) -> str | None:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name):
            base = self.aliases.get(node.id, node.id)
            return ".".join([base, *reversed(parts)])
        return None

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = self.dotted(node)
        if name:
            self.uses.append((node.lineno, name))
        else:
            self.uses.append((node.lineno, f"?.{node.attr}"))
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self.uses.append((node.lineno, self.aliases.get(node.id, node.id)))

    def visit_Call(self, node: ast.Call) -> None:
        func = self.dotted(node.func) if isinstance(node.func, ast.Name | ast.Attribute) else None
        if (
            func in ("getattr", "builtins.getattr", "setattr", "delattr", "hasattr")
            and len(node.args) >= 2
        ):
            name = node.args[1]
            literal = (
                name.value
                if isinstance(name, ast.Constant) and isinstance(name.value, str)
                else None
            )
            self.getattr_names.append((node.lineno, literal))
        self.generic_visit(node)


def _matches(name: str, forbidden: str) -> bool:
    return name == forbidden or name.startswith(forbidden + ".")


def scan(cell_id: str, source: str, forbidden_names: tuple[str, ...]) -> list[Finding]:
    """Findings for one cell. A cell that does not parse has none (it fails at run time)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    resolver = _Resolver()
    resolver.visit(tree)
    findings: dict[tuple[int, str], Finding] = {}
    last_parts = {name.rsplit(".", 1)[-1] for name in forbidden_names}
    for line, name in resolver.uses:
        for forbidden in forbidden_names:
            if _matches(name, forbidden):
                findings.setdefault(
                    (line, forbidden), Finding(cell_id, line, forbidden, escape=False)
                )
        for escape in ESCAPE_NAMES:
            if _matches(name, escape):
                findings.setdefault((line, escape), Finding(cell_id, line, escape, escape=True))
        attribute = name.rsplit(".", 1)[-1]
        if attribute in ESCAPE_ATTRIBUTES and "." in name:
            findings.setdefault(
                (line, attribute), Finding(cell_id, line, f"the attribute {attribute}", escape=True)
            )
    for line, literal in resolver.getattr_names:
        if literal is None:
            findings.setdefault(
                (line, "getattr"),
                Finding(cell_id, line, "getattr with a computed name", escape=True),
            )
        elif literal in last_parts or literal in ESCAPE_ATTRIBUTES:
            findings.setdefault(
                (line, literal), Finding(cell_id, line, f"getattr(..., '{literal}')", escape=True)
            )
    return sorted(findings.values(), key=lambda f: (f.line, f.name))
