"""The from-scratch rule, decided by static analysis of the whole submission in the judge.

The same file ships in the notebook helper package as ``cnnkit/rules.py`` (a link in
``source/``, a copy in each release), so the visible checks apply this very rule.

Nothing here runs student code. For each from-scratch part the analysis

1. resolves names across every cell that runs: imports and their aliases
   (the locked setup cell's ``F`` and ``nn`` included), module aliases assigned
   to names (``f = F``), parameters whose defaults are modules or functions,
   attribute chains, ``getattr(F, "conv2d")``, ``vars(F)["conv2d"]``,
   ``F.__dict__["conv2d"]`` and ``globals()["F"]``;
2. finds what the part's function can reach: the statements that bind every
   global name it uses, transitively (helper functions, class attributes,
   default arguments, a module attribute a cell assigns such as
   ``torch.add = ...``);
3. reports forbidden APIs in reachable code, and *escapes* in reachable code
   or in any cell's top-level code (which always runs): code that can run what
   this analysis cannot see, such as threads and processes, ``exec`` and
   ``eval``, ``importlib``, computed attribute names on modules, ``gc``'s object finders,
   ``inspect``, ``ctypes``, the dispatch machinery and the sandbox's own
   modules. A module used as a value anywhere the resolver does not follow it
   (``f, _ = F, None``, ``[F][0]``, ``lambda: F``, a class attribute, a name
   bound to two different modules) is an escape too: the analysis would lose
   track of what the name means.

A computed ``getattr(self, f"conv{i}")`` is not an escape: ``self`` is not a
module. An escape in one part's helper costs that part only.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import inspect
import sys
from collections.abc import Iterable
from dataclasses import dataclass

# Dotted names (and everything under them) that can run code the analysis cannot see.
ESCAPE_NAMES = (
    "importlib",
    "__import__",
    "eval",
    "exec",
    "compile",
    "locals",
    "builtins",
    "__builtins__",
    "sys.modules",
    "sys.settrace",
    "sys.setprofile",
    "sys._getframe",
    "ctypes",
    # Anything that turns a string into an object or runs code from data: a way to name
    # a forbidden API without writing it.
    "pickle",
    "_pickle",
    "copyreg",
    "marshal",
    "shelve",
    "dill",
    "cloudpickle",
    "pkgutil",
    "pydoc",
    "runpy",
    "code",
    "codeop",
    "typing._eval_type",
    "typing.get_type_hints",
    "typing.ForwardRef",
    "operator.attrgetter",
    "operator.methodcaller",
    "torch.load",
    "torch.serialization",
    "gc.get_objects",  # gc.collect() and friends are harmless; finding objects is not
    "gc.get_referrers",
    "gc.get_referents",
    "gc.garbage",
    "gc.callbacks",
    "inspect",
    "threading",
    "_thread",
    "asyncio",
    "multiprocessing",
    "torch.multiprocessing",
    "torch.utils.data",
    "concurrent",
    "pty",
    "os.forkpty",
    "subprocess",
    "signal",
    "os.fork",
    "os.system",
    "os.popen",
    "os.exec*",
    "os.spawn*",
    "os.posix_spawn*",
    "torch.ops",
    "torch._C",
    "torch._ops",
    "torch.overrides",
    "torch.utils._python_dispatch",
    "torch.library",
    "torch._refs",
    "torch._decomp",
    "torch._prims",
    "objects",
    "protocol",
    "server",
    "probes",
)
# Attributes that reach into functions, frames or the type system, on any object.
ESCAPE_ATTRIBUTES = (
    "__globals__",
    "__code__",
    "__closure__",
    "__builtins__",
    "__subclasses__",
    "__getattribute__",
    "__wrapped__",
    "__loader__",
    "__spec__",
    "f_globals",
    "f_locals",
    "f_back",
    # torch's dispatch internals, reached from any object (``_t()._C`` where ``_t`` returns torch)
    "_C",
    "_DisableTorchDispatch",
    "_DisablePythonDispatcher",
    "_ExcludeDispatchKeyGuard",
    "_disable_current_modes",
    "_python_dispatch",
    "aten",
)
# Builtins that look names up, harmless when called directly (the rules above apply) but
# not when handed to other code (``functools.reduce(getattr, ["models", "AlexNet"], tv)``).
PASSED_ESCAPES = ("getattr", "setattr", "delattr", "vars", "globals", "__import__", "eval", "exec")
UNKNOWN = "?"
# Builtins that only look at a module they are given (``print(torch)``, ``dir(F)``).
INSPECTING_BUILTINS = ("print", "dir", "help", "repr", "str", "type", "id", "hasattr", "isinstance")


@dataclass(frozen=True)
class Finding:
    cell: str
    line: int
    name: str
    escape: bool  # True: a way around the analysis; False: a forbidden API itself

    def describe(self) -> str:
        shown = self.name.replace("torch.nn.functional.", "F.")
        if self.escape:
            return (
                f"uses {shown} (cell '{self.cell}', line {self.line}), which can run code "
                "the from-scratch check cannot see"
            )
        return f"calls {shown} (cell '{self.cell}', line {self.line}), which this task forbids"


def _helper_module() -> object | None:
    """The trusted course helper in the judge; in a notebook (where this file ships as
    ``cnnkit.rules`` for the visible checks), the cnnkit package it belongs to."""
    try:
        from autograder.course import load_helper
    except ImportError:
        return sys.modules.get((__package__ or "cnnkit").split(".")[0])
    return load_helper()


def _resolve_path(dotted: str) -> list[object]:
    """The objects a dotted name walks through in this (trusted) process, without importing.

    ``torch.nn.modules.conv.F.conv2d`` walks torch, torch.nn, ..., and ends at the same
    function object as ``torch.nn.functional.conv2d``; ``cnnkit.torch`` is the torch module.
    Only modules already loaded here (and the course helper as ``cnnkit``) are walked.
    """
    parts = dotted.split(".")
    if parts[0] == "cnnkit":
        current = _helper_module()
        if current is None:
            return []
    elif parts[0] in sys.modules:
        current = sys.modules[parts[0]]
    else:
        return []
    path = [current]
    for part in parts[1:]:
        try:
            current = inspect.getattr_static(current, part)
        except AttributeError:
            break
        path.append(current)
    return path


@functools.lru_cache(maxsize=64)
def _forbidden_objects(patterns: tuple[str, ...]) -> dict[int, tuple[str, object]]:
    """Objects the rubric's exact names stand for (id -> (name, object kept alive))."""
    found = {}
    for pattern in patterns:
        if "*" in pattern:
            continue
        path = _resolve_path(pattern)
        if len(path) == len(pattern.split(".")):
            found[id(path[-1])] = (pattern, path[-1])
    return found


def _is_module(dotted: str) -> bool:
    """Does a dotted name stand for a module here (``F``, ``torch.nn``), not an API in one?"""
    path = _resolve_path(dotted)
    return len(path) == len(dotted.split(".")) and inspect.ismodule(path[-1])


def matches(name: str, pattern: str) -> bool:
    """``pattern`` names an API and everything under it; ``*`` matches by prefix."""
    if "*" in pattern:
        parts = name.split(".")
        return any(
            fnmatch.fnmatchcase(".".join(parts[:n]), pattern) for n in range(1, len(parts) + 1)
        )
    return name == pattern or name.startswith(pattern + ".")


# --------------------------------------------------------------------------- cells


@dataclass
class _Cell:
    id: str
    tree: ast.Module
    trusted: bool


def _parse(cells: Iterable[tuple[str, str, bool]]) -> list[_Cell]:
    parsed = []
    for cell_id, source, trusted in cells:
        try:
            parsed.append(_Cell(cell_id, ast.parse(source), trusted))
        except (SyntaxError, ValueError):
            continue  # it fails at run time, with its own message
    return parsed


def _import_aliases(node: ast.Import | ast.ImportFrom) -> dict[str, str]:
    aliases = {}
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                aliases[top] = top
    else:
        module = "." * node.level + (node.module or "")
        for alias in node.names:
            if alias.name != "*":
                full = f"{module}.{alias.name}" if module else alias.name
                aliases[alias.asname or alias.name] = full
    return aliases


def _functions(node: ast.AST) -> bool:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef)


def _walk_scope(node: ast.AST):
    """Nodes of this scope: not inside nested functions, lambdas or classes."""
    stack = list(ast.iter_child_nodes(node))
    while stack:
        item = stack.pop()
        yield item
        if not _functions(item):
            stack.extend(ast.iter_child_nodes(item))


# --------------------------------------------------------------------------- resolution


class _Resolver:
    """Resolves expressions to dotted names under global aliases and one function's locals."""

    def __init__(self, aliases: dict[str, str], modules: frozenset[str] = frozenset()) -> None:
        self.aliases = aliases
        self.modules = modules  # names an ``import`` statement binds: modules by definition

    def is_module(self, dotted: str) -> bool:
        return dotted in self.modules or _is_module(dotted)

    def dotted(self, node: ast.AST, local: dict[str, str | None]) -> str | None:
        parts = []
        while True:
            if isinstance(node, ast.Attribute):
                parts.append(node.attr)
                node = node.value
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
            ):
                parts.append(node.args[1].value)
                node = node.args[0]
            elif isinstance(node, ast.Subscript) and _literal(node.slice) is not None:
                key = _literal(node.slice)
                inner = node.value
                if isinstance(inner, ast.Call) and _is_name(inner.func, "globals"):
                    node = ast.Name(key, ast.Load())
                elif isinstance(inner, ast.Call) and _is_name(inner.func, "vars") and inner.args:
                    parts.append(key)
                    node = inner.args[0]
                elif isinstance(inner, ast.Attribute) and inner.attr == "__dict__":
                    parts.append(key)
                    node = inner.value
                else:
                    return None
            elif isinstance(node, ast.Name):
                base = self.name(node.id, local)
                if base is None:
                    return None
                return ".".join([base, *reversed(parts)])
            else:
                return None

    def name(self, name: str, local: dict[str, str | None]) -> str | None:
        """A name's dotted meaning; None for a local that is not an alias."""
        if name in local:
            return local[name]
        return self.aliases.get(name, name)

    def module_like(self, node: ast.AST, local: dict[str, str | None]) -> bool:
        """Does ``node`` name something reached through an import (a module, an API)?"""
        if isinstance(node, ast.Call) and _is_name(node.func, "globals"):
            return True
        dotted = self.dotted(node, local)
        if dotted is None:
            return False
        root = dotted.split(".")[0]
        return root in self.aliases.values() or root in {
            a.split(".")[0] for a in self.aliases.values()
        }


def _rooted_at_name(node: ast.AST) -> bool:
    """``a.b.c`` starts at a name (a parameter, a local, ``self``): the resolver decides
    those. Chains that start at a call's result or an item (``_lib().conv2d``,
    ``[F][0].conv2d``) it cannot follow."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name)


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _global_aliases(cells: list[_Cell]) -> dict[str, str]:
    """Import aliases of every cell, then names assigned an alias (``f = F``, ``c = F.conv2d``)."""
    aliases: dict[str, str] = {}
    for cell in cells:
        for node in _walk_scope(cell.tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                aliases.update(_import_aliases(node))
    imported = dict(aliases)
    resolver = _Resolver(aliases)
    conflicted: set[str] = set()
    for _ in range(3):  # chains of assigned aliases
        meanings: dict[str, set[str]] = {}
        for cell in cells:
            for node in _walk_scope(cell.tree):
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                    if isinstance(target, ast.Name) and resolver.module_like(node.value, {}):
                        dotted = resolver.dotted(node.value, {})
                        if dotted and dotted != target.id:
                            meanings.setdefault(target.id, set()).add(dotted)
                            if target.id in imported and imported[target.id] != dotted:
                                meanings[target.id].add(imported[target.id])
        for name, found in meanings.items():
            if len(found) == 1 and name not in conflicted:
                aliases[name] = next(iter(found))
            else:  # two meanings: neither is followed, and each binding is an escape
                conflicted.add(name)
                aliases.pop(name, None)
    return aliases


def _function_locals(
    function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, resolver: _Resolver, outer: dict
) -> dict[str, str | None]:
    """A function's local names: aliases where they are bound to one, else None (shadowing)."""
    local: dict[str, str | None] = dict(outer)
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    defaults = dict(
        zip([a.arg for a in positional[len(positional) - len(args.defaults) :]], args.defaults)
    )
    defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
    for arg in [*positional, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None:
            default = defaults.get(arg.arg)
            local[arg.arg] = (
                resolver.dotted(default, outer)
                if default is not None and resolver.module_like(default, outer)
                else None
            )
    if isinstance(function, ast.Lambda):
        return local
    declared_global = {
        n for node in _walk_scope(function) if isinstance(node, ast.Global) for n in node.names
    }
    for node in _walk_scope(function):
        if isinstance(node, ast.Import | ast.ImportFrom):
            local.update(_import_aliases(node))
        elif (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Store)
            and node.id not in declared_global
        ):
            local.setdefault(node.id, None)
    conflicted: set[str] = set()
    for _ in range(2):
        for node in _walk_scope(function):
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                name = node.targets[0].id
                if name not in declared_global and resolver.module_like(node.value, local):
                    dotted = resolver.dotted(node.value, local)
                    if name in conflicted or local.get(name) not in (None, dotted):
                        conflicted.add(name)  # two meanings: an escape at each binding
                        dotted = None
                    local[name] = dotted
    return local


class _Scanner:
    """Forbidden names and escapes in one statement, scope by scope."""

    def __init__(
        self,
        cell: str,
        resolver: _Resolver,
        forbidden: tuple[str, ...],
        parents: dict[int, ast.AST],
        rebound: frozenset[str],
    ) -> None:
        self.cell = cell
        self.resolver = resolver
        self.forbidden = forbidden
        self.parents = parents  # id(node) -> its parent, for every parsed cell
        self.rebound = rebound  # names the submission binds (a rebound ``print`` is not print)
        self.found: dict[tuple[int, str], Finding] = {}

    def add(self, line: int, name: str, escape: bool) -> None:
        self.found.setdefault((line, name), Finding(self.cell, line, name, escape))

    def scan(self, node: ast.AST, local: dict[str, str | None]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for part in [*node.args.defaults, *[d for d in node.args.kw_defaults if d is not None]]:
                self.scan(part, local)
            for decorator in getattr(node, "decorator_list", []):
                self.scan(decorator, local)
            inner = _function_locals(node, self.resolver, local)
            body = node.body if isinstance(node.body, list) else [node.body]
            for statement in body:
                self.scan(statement, inner)
            return
        if isinstance(node, ast.ClassDef):
            for inner in _walk_scope(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):  # a class attribute alias
                    self.add(getattr(inner, "lineno", 0), "an import in a class body", True)
        self.visit(node, local)
        for child in ast.iter_child_nodes(node):
            self.scan(child, local)

    def followed(self, node: ast.AST, dotted: str, local: dict[str, str | None]) -> bool:
        """Is this use of a module one the resolver follows (``F.x``, ``f = F``), or one
        that only looks at it (``print(F)``)?"""
        parent = self.parents.get(id(node))
        if isinstance(parent, ast.Attribute | ast.Expr | ast.arguments):
            return True  # F.x, a bare expression, a default (see _function_locals)
        if isinstance(parent, ast.Call) and node is not parent.func:
            func = parent.func
            if isinstance(func, ast.Name) and func.id not in local and func.id not in self.rebound:
                if func.id in INSPECTING_BUILTINS:
                    return True
                if func.id in ("getattr", "setattr", "delattr", "vars") and parent.args:
                    return node is parent.args[0]  # the rules for these apply
        if (
            isinstance(parent, ast.Assign)
            and len(parent.targets) == 1
            and isinstance(parent.targets[0], ast.Name)
            and not isinstance(self.parents.get(id(parent)), ast.ClassDef)
        ):
            return self.resolver.name(parent.targets[0].id, local) == dotted
        return False

    def visit(self, node: ast.AST, local: dict[str, str | None]) -> None:
        line = getattr(node, "lineno", 0)
        resolver = self.resolver
        if isinstance(node, ast.Import | ast.ImportFrom):
            for full in _import_aliases(node).values():
                self.check_name(line, full)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.check_name(line, alias.name)
            return
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("getattr", "setattr", "delattr"):
                name = _literal(node.args[1]) if len(node.args) >= 2 else None
                if (
                    func.id == "getattr"
                    and name is not None
                    and resolver.dotted(node, local) is None
                    and not _rooted_at_name(node.args[0])
                ):
                    self.check_leaf(line, name)  # getattr(_lib(), "conv2d")
                if len(node.args) >= 2 and resolver.module_like(node.args[0], local):
                    if func.id != "getattr" or name is None:
                        what = "getattr with a computed name" if func.id == "getattr" else func.id
                        self.add(line, f"{what} on a module", True)
                if name in ESCAPE_ATTRIBUTES:
                    self.add(line, f"the attribute {name}", True)
            for argument in [*node.args, *(k.value for k in node.keywords)]:
                if isinstance(argument, ast.Name) and argument.id in PASSED_ESCAPES:
                    self.add(line, f"{argument.id} passed as a value", True)
            if _is_name(func, "vars") and node.args and resolver.module_like(node.args[0], local):
                self.add(line, "vars() of a module", True)
            if _is_name(func, "globals"):
                self.add(line, "globals()", True)
        if isinstance(node, ast.Subscript):
            inner = node.value
            if _literal(node.slice) is None and (
                (isinstance(inner, ast.Call) and _is_name(inner.func, "globals"))
                or (isinstance(inner, ast.Attribute) and inner.attr == "__dict__")
            ):
                self.add(line, "a computed name looked up in a namespace", True)
        if isinstance(node, ast.Attribute):
            if node.attr in ESCAPE_ATTRIBUTES:
                self.add(line, f"the attribute {node.attr}", True)
            if node.attr == "__dict__" and resolver.module_like(node.value, local):
                self.add(line, "a module's __dict__", True)
            if isinstance(node.ctx, ast.Store | ast.Del) and resolver.module_like(
                node.value, local
            ):
                dotted = resolver.dotted(node, local) or node.attr
                self.add(line, f"an assignment to {dotted}", True)
        if isinstance(node, ast.Attribute | ast.Name | ast.Subscript | ast.Call) and isinstance(
            getattr(node, "ctx", ast.Load()), ast.Load
        ):
            dotted = resolver.dotted(node, local)
            if dotted is not None:
                self.check_name(line, dotted)
                if (
                    isinstance(node, ast.Name | ast.Attribute)
                    and resolver.is_module(dotted)
                    and not self.followed(node, dotted, local)
                ):
                    shown = dotted.replace("torch.nn.functional", "F")
                    self.add(line, f"the module {shown} used as a value", True)
            elif isinstance(node, ast.Attribute) and not _rooted_at_name(node):
                self.check_leaf(line, node.attr)

    def check_leaf(self, line: int, attribute: str) -> None:
        """An attribute of something the analysis cannot name (a call's result, a list
        item): a forbidden function's own name there counts (``_lib().conv2d``)."""
        for pattern in self.forbidden:
            leaf = pattern.rsplit(".", 1)[-1]
            if "." in pattern and "*" not in leaf and attribute == leaf:
                objects = _forbidden_objects((pattern,))
                if not any(inspect.ismodule(obj) for _, obj in objects.values()):
                    self.add(line, pattern, False)

    def check_name(self, line: int, dotted: str) -> None:
        for pattern in self.forbidden:
            if matches(dotted, pattern):
                self.add(line, pattern.rstrip(".*"), False)
        if "." in dotted:  # the same API or module reached by another path
            path = _resolve_path(dotted)
            for patterns, escape in ((self.forbidden, False), (ESCAPE_NAMES, True)):
                objects = _forbidden_objects(patterns) if patterns else {}
                for item in path:
                    if id(item) in objects:
                        self.add(line, objects[id(item)][0], escape)
                        break
        for pattern in ESCAPE_NAMES:
            if matches(dotted, pattern):
                self.add(line, pattern.rstrip("*"), True)


# --------------------------------------------------------------------------- reachability


def _bound_names(statement: ast.stmt) -> set[str]:
    """Global names a top-level statement binds, with the roots of module attributes it sets."""
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        names = {statement.name}
        if not isinstance(statement, ast.ClassDef):
            names |= {
                n
                for node in ast.walk(statement)
                if isinstance(node, ast.Global)
                for n in node.names
            }
        return names
    names: set[str] = set()
    for node in [statement, *_walk_scope(statement)]:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= set(_import_aliases(node))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute | ast.Subscript) and isinstance(
            node.ctx, ast.Store | ast.Del
        ):
            root = node
            while isinstance(root, ast.Attribute | ast.Subscript | ast.Call):
                root = root.func if isinstance(root, ast.Call) else root.value
            if isinstance(root, ast.Name):
                names.add(root.id)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("setattr", "delattr")
            and node.args
        ):
            root = node.args[0]
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name):
                names.add(root.id)
    return names


def _runs_at_definition(tree: ast.Module) -> list[ast.AST]:
    """What executes when a cell runs, short of calling its functions: top-level
    statements (not imports), and of definitions their decorators, default
    arguments, base classes and class bodies (methods' decorators and defaults too)."""
    nodes: list[ast.AST] = []
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            nodes += node.decorator_list + node.args.defaults
            nodes += [d for d in node.args.kw_defaults if d is not None]
        elif isinstance(node, ast.ClassDef):
            nodes += node.decorator_list + node.bases + [k.value for k in node.keywords]
            stack.extend(node.body)
        else:
            nodes.append(node)
    return nodes


def _used_names(statement: ast.AST) -> set[str]:
    names = {node.id for node in ast.walk(statement) if isinstance(node, ast.Name)}
    for node in ast.walk(statement):  # globals()["name"] reads a global by a literal name
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Call)
            and _is_name(node.value.func, "globals")
        ):
            key = _literal(node.slice)
            if key:
                names.add(key)
    return names


def analyze(
    cells: Iterable[tuple[str, str, bool]],
    parts: Iterable[tuple[str, str | Iterable[str], tuple[str, ...]]],
) -> dict[str, list[Finding]]:
    """Findings per from-scratch part.

    ``cells`` are ``(cell id, source, trusted)`` in run order (trusted: the locked
    setup cells, whose findings do not count); ``parts`` are ``(part id, function
    name or names, forbidden patterns)``. A part with no findings is absent from the
    result.
    """
    parsed = _parse(cells)
    imported = frozenset(
        alias.name
        for cell in parsed
        for node in ast.walk(cell.tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    )
    resolver = _Resolver(_global_aliases(parsed), imported)
    bindings: dict[str, list[tuple[_Cell, ast.stmt]]] = {}
    parents: dict[int, ast.AST] = {}
    rebound: set[str] = set()
    for cell in parsed:
        for node in ast.walk(cell.tree):
            for child in ast.iter_child_nodes(node):
                parents[id(child)] = node
        for statement in cell.tree.body:
            for name in _bound_names(statement):
                bindings.setdefault(name, []).append((cell, statement))
                if not cell.trusted:
                    rebound.add(name)
    frozen = frozenset(rebound)

    def scanner_for(cell: _Cell, forbidden: tuple[str, ...]) -> _Scanner:
        return _Scanner(cell.id, resolver, forbidden, parents, frozen)

    def reach(roots: set[str]) -> list[tuple[_Cell, ast.stmt]]:
        seen: set[int] = set()
        todo, done = list(roots), set()
        found: list[tuple[_Cell, ast.stmt]] = []
        while todo:
            name = todo.pop()
            if name in done:
                continue
            done.add(name)
            for cell, statement in bindings.get(name, []):
                if id(statement) not in seen:
                    seen.add(id(statement))
                    found.append((cell, statement))
                    todo.extend(_used_names(statement) - done)
        return found

    # What runs whenever the cells run: top-level statements, class bodies, decorators
    # and default arguments, and everything they reach. Escapes there void every part.
    always: dict[tuple[str, int, str], Finding] = {}
    roots: set[str] = set()
    for cell in parsed:
        if cell.trusted:
            continue
        scanner = scanner_for(cell, ())
        for node in _runs_at_definition(cell.tree):
            scanner.scan(node, {})
            roots |= _used_names(node)
        for finding in scanner.found.values():
            if finding.escape:
                always.setdefault((finding.cell, finding.line, finding.name), finding)
    for cell, statement in reach(roots):
        if cell.trusted:
            continue
        scanner = scanner_for(cell, ())
        scanner.scan(statement, {})
        for finding in scanner.found.values():
            if finding.escape:
                always.setdefault((finding.cell, finding.line, finding.name), finding)
    result: dict[str, list[Finding]] = {}
    for part_id, function, forbidden in parts:
        reachable = reach({function} if isinstance(function, str) else set(function))
        findings: dict[tuple[str, int, str], Finding] = {}
        for cell, statement in reachable:
            if cell.trusted:
                continue
            scanner = scanner_for(cell, forbidden)
            scanner.scan(statement, {})
            for finding in scanner.found.values():
                findings.setdefault((finding.cell, finding.line, finding.name), finding)
        for key, finding in always.items():
            findings.setdefault(key, finding)
        if findings:
            result[part_id] = sorted(
                findings.values(), key=lambda f: (f.escape, f.cell, f.line, f.name)
            )
    return result
