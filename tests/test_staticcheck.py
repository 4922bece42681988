"""Is the from-scratch rule decided right: forbidden APIs found through aliases, attribute
chains, class attributes, default arguments and namespaces, across cells; escapes found
where they can matter, and nothing voided that cannot reach them?"""

from __future__ import annotations

import pytest

from autograder.staticcheck import analyze

FORBIDDEN = ("torch.nn.functional.conv2d", "torch.conv2d", "torch.nn.Conv2d", "scipy")
SETUP = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\nimport numpy as np\n"


def findings(*cells: str, function: str = "conv2d", forbidden=FORBIDDEN):
    program = [("setup", SETUP, True)] + [(f"c{i}", text, False) for i, text in enumerate(cells)]
    return analyze(program, [("part", function, forbidden)]).get("part", [])


@pytest.mark.parametrize(
    "cells",
    [
        ("def conv2d(x, w):\n    return F.conv2d(x, w)\n",),
        ("from torch.nn.functional import conv2d as c\ndef conv2d(x, w):\n    return c(x, w)\n",),
        ("def conv2d(x, w):\n    return torch.conv2d(x, w)\n",),
        ("def conv2d(x, w):\n    return nn.Conv2d(3, 4, 3)(x)\n",),
        ("def conv2d(x, w):\n    return torch.nn.functional.conv2d(x, w)\n",),
        ("def conv2d(x, w):\n    return nn.functional.conv2d(x, w)\n",),
        ("def conv2d(x, w):\n    f = F\n    return f.conv2d(x, w)\n",),
        ("def conv2d(x, w, _op=F.conv2d):\n    return _op(x, w)\n",),
        ("def conv2d(x, w):\n    return getattr(F, 'conv2d')(x, w)\n",),
        ("def conv2d(x, w):\n    return vars(F)['conv2d'](x, w)\n",),
        ("def conv2d(x, w):\n    return F.__dict__['conv2d'](x, w)\n",),
        ("def conv2d(x, w):\n    return globals()['F'].conv2d(x, w)\n",),
        ("class Ops:\n    op = F.conv2d\n", "def conv2d(x, w):\n    return Ops.op(x, w)\n"),
        ("OP = F.conv2d\n", "def conv2d(x, w):\n    return OP(x, w)\n"),
        (
            "def helper(x, w):\n    return F.conv2d(x, w)\n",
            "def conv2d(x, w):\n    return helper(x, w)\n",
        ),
        ("import scipy.signal\ndef conv2d(x, w):\n    return scipy.signal.correlate(x, w)\n",),
    ],
)
def test_forbidden_apis_are_found_through_aliases_and_cells(cells):
    found = findings(*cells)
    assert found and any(not f.escape for f in found), found
    assert "which this task forbids" in found[0].describe()


@pytest.mark.parametrize(
    ("cells", "name"),
    [
        (
            "def conv2d(x, w):\n    return getattr(F, 'conv' + '2d')(x, w)\n",
            "getattr with a computed name",
        ),
        (
            "import importlib\ndef conv2d(x, w):\n    return importlib.import_module('torch').conv2d(x, w)\n",
            "importlib",
        ),
        ("def conv2d(x, w):\n    return __import__('torch').conv2d(x, w)\n", "__import__"),
        ("def conv2d(x, w):\n    return torch.ops.aten.convolution(x, w)\n", "torch.ops"),
        ("def conv2d(x, w):\n    return torch._C._nn.x(x)\n", "torch._C"),
        ("def conv2d(x, w):\n    return eval('x')\n", "eval"),
        (
            "import sys\ndef conv2d(x, w):\n    return sys.modules['torch'].conv2d(x, w)\n",
            "sys.modules",
        ),
        (
            "import threading\ndef conv2d(x, w):\n    out = []\n    threading.Thread(target=lambda: out.append(x)).start()\n    return out\n",
            "threading",
        ),
        (
            "import objects\nobjects.ObjectServer.to_judge = lambda *a: 0\n",
            "an assignment to objects",
        ),
        ("import objects\ndef conv2d(x, w):\n    return objects.RecordOps\n", "objects"),
        (
            "def conv2d(x, w):\n    name = 'conv2d'\n    return vars(F)[name](x, w)\n",
            "vars() of a module",
        ),
        ("def conv2d(x, w):\n    return F.__dict__[w](x)\n", "a module's __dict__"),
        ("torch.add = lambda a, b: a\n", "an assignment to torch.add"),
        ("exec('1')\n", "exec"),
    ],
)
def test_escapes_are_reported(cells, name):
    found = findings(cells)
    assert any(f.escape and f.name.startswith(name) for f in found), found
    assert (
        "can run code the from-scratch check cannot see"
        in [f for f in found if f.escape][0].describe()
    )


@pytest.mark.parametrize(
    "cells",
    [
        # a computed getattr on self, an attribute named ops, in a class the function never uses
        (
            "class DoubleConv(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.ops = [1]\n    def forward(self, x):\n        for i in range(2):\n"
            "            x = getattr(self, f'conv{i}')(x)\n        return x\n",
            "def conv2d(x, w):\n    return (x * w).sum()\n",
        ),
        # forbidden calls in code the function does not reach: another cell's helper, a check
        (
            "def other(x, w):\n    return F.conv2d(x, w)\n",
            "def conv2d(x, w):\n    return x.unfold(2, 3, 1)\n",
        ),
        # a parameter that shadows a module alias, and a local named like an escape
        ("def conv2d(x, F):\n    compile = 3\n    return F.conv2d(x) + compile\n",),
        # escape modules imported but unused at top level
        ("import inspect\ndef conv2d(x, w):\n    return x @ w\n",),
    ],
)
def test_no_false_alarms(cells):
    assert findings(*cells) == []


def test_only_the_part_that_reaches_an_escape_loses_it():
    program = [
        ("setup", SETUP, True),
        (
            "a",
            "import threading\ndef helper(x):\n    threading.Thread(target=print).start()\n    return x\n",
            False,
        ),
        ("b", "def uses_helper(x):\n    return helper(x)\n", False),
        ("c", "def clean(x):\n    return x + 1\n", False),
    ]
    parts = [("p1", "uses_helper", ()), ("p2", "clean", ())]
    result = analyze(program, parts)
    assert set(result) == {"p1"}


def test_top_level_escapes_void_every_part():
    program = [
        ("setup", SETUP, True),
        ("a", "def clean(x):\n    return x + 1\n", False),
        ("b", "import builtins\nbuiltins.abs = lambda v: v\n", False),
    ]
    result = analyze(program, [("p1", "clean", ()), ("p2", "other", ())])
    assert set(result) == {"p1", "p2"}


def test_trusted_setup_cells_are_not_findings():
    program = [("setup", SETUP + "from torch.nn.functional import conv2d\n", True)]
    program.append(("a", "def conv2d_mine(x):\n    return x\n", False))
    assert analyze(program, [("p", "conv2d_mine", FORBIDDEN)]) == {}


def test_prefix_patterns_from_the_rubric():
    found = findings(
        "def conv2d(x, w):\n    return F.conv_transpose2d(x, w)\n",
        forbidden=("torch.nn.functional.conv*",),
    )
    assert found and not found[0].escape


def test_a_cell_that_does_not_parse_has_no_findings():
    assert findings("def conv2d(x, w:\n    return F.conv2d(x, w)\n") == []


def test_clean_solutions_have_no_findings(course):
    from autograder.grader import AssignmentGrader

    for assignment in course.assignments():
        grader = AssignmentGrader(course, assignment)
        assert grader.solution().findings == {}, assignment


@pytest.mark.parametrize(
    "cells",
    [
        # a helper called at top level patches the sandbox's trace
        (
            "def _quiet():\n    import objects\n    objects.RecordOps.__torch_dispatch__ = None\n_quiet()\n",
            "def conv2d(x, w):\n    return x\n",
        ),
        # the same patch in a class body (it runs when the cell runs)
        (
            "class Quiet:\n    import objects\n    objects.RecordOps.x = 1\n",
            "def conv2d(x, w):\n    return x\n",
        ),
        # a thread started by a helper called at top level
        (
            "import threading\ndef serve():\n    threading.Thread(target=print).start()\nserve()\n",
            "def conv2d(x, w):\n    return x\n",
        ),
        # a decorator and a default argument run at definition time
        ("def deco(f):\n    exec('1')\n    return f\n@deco\ndef conv2d(x, w):\n    return x\n",),
        ("import asyncio\ndef conv2d(x, w):\n    return asyncio.run(x)\n",),
    ],
)
def test_code_that_runs_when_the_cells_run_is_checked_through_calls(cells):
    program = [("setup", SETUP, True)] + [(f"c{i}", t, False) for i, t in enumerate(cells)]
    result = analyze(program, [("part", "conv2d", FORBIDDEN), ("other", "unrelated", ())])
    assert set(result) >= {"part"} and any(f.escape for f in result["part"]), result


@pytest.mark.parametrize(
    "code",
    [
        "def conv2d(x, w):\n    return torch.nn.modules.conv.F.conv2d(x, w)\n",
        "import cnnkit\ndef conv2d(x, w):\n    return cnnkit.torch.nn.functional.conv2d(x, w)\n",
    ],
)
def test_a_forbidden_api_reached_by_another_path_is_found(code):
    found = findings(code)
    assert any(not f.escape and f.name.endswith("conv2d") for f in found), found


def test_a_whole_forbidden_module_reached_through_the_helper():
    code = "import cnnkit\ndef conv2d_numpy(x, w):\n    return cnnkit.torch.zeros(2).numpy()\n"
    assert findings(code, function="conv2d_numpy", forbidden=("torch",))


@pytest.mark.parametrize(
    ("cells", "name"),
    [
        (
            "import pickle\ndef conv2d(x, w):\n    return pickle.loads(b'ctorch\\nconv2d\\n.')(x, w)\n",
            "pickle",
        ),
        (
            "import pkgutil\ndef conv2d(x, w):\n    return pkgutil.resolve_name('torch:conv2d')(x, w)\n",
            "pkgutil",
        ),
        (
            "import pydoc\ndef conv2d(x, w):\n    return pydoc.locate('torch.conv2d')(x, w)\n",
            "pydoc",
        ),
        (
            "import operator\ndef conv2d(x, w):\n    return operator.attrgetter('nn.functional.conv2d')(torch)(x, w)\n",
            "operator.attrgetter",
        ),
        (
            "import functools\ndef conv2d(x, w):\n    return functools.reduce(getattr, ['conv2d'], torch)(x, w)\n",
            "getattr passed as a value",
        ),
        (
            "import typing\ndef conv2d(x, w):\n    return typing._eval_type(typing.ForwardRef('torch.conv2d'), {'torch': torch}, {})(x, w)\n",
            "typing",
        ),
        (
            "def conv2d(x, w):\n    return getattr(object, '__subclasses__')()[0](x, w)\n",
            "the attribute __subclasses__",
        ),
        ("import gc\ndef conv2d(x, w):\n    return gc.get_objects()[0](x, w)\n", "gc.get_objects"),
    ],
)
def test_ways_to_name_an_api_by_a_string_are_escapes(cells, name):
    found = findings(cells)
    assert any(f.escape and name in f.name for f in found), found


def test_collecting_garbage_is_not_an_escape():
    cells = "import gc\ngc.collect()\ndef conv2d(x, w):\n    gc.collect()\n    return x\n"
    assert findings(cells) == []


def test_every_name_an_answer_cell_defines_can_be_a_root():
    cell = "def conv2d(x, w):\n    return x\n\ndef second(x, w):\n    return F.conv2d(x, w)\n"
    program = [("setup", SETUP, True), ("answer", cell, False)]
    assert analyze(program, [("part", "conv2d", FORBIDDEN)]) == {}
    assert analyze(program, [("part", {"conv2d", "second"}, FORBIDDEN)])["part"]


@pytest.mark.parametrize(
    "cells",
    [
        ("def _t():\n    return torch\n", "def conv2d(x, w):\n    return _t().conv2d(x, w)\n"),
        ("def conv2d(x, w):\n    return [F][0].conv2d(x, w)\n",),
    ],
)
def test_a_forbidden_name_on_a_call_result_or_an_item_is_found(cells):
    found = findings(*cells)
    assert any(not f.escape and "conv2d" in f.name for f in found), found


def test_torchs_dispatch_switches_are_escapes_from_any_object():
    cells = (
        "def _t():\n    return torch\n",
        "def conv2d(x, w):\n    with _t()._C._DisableTorchDispatch():\n        return x\n",
    )
    found = findings(*cells)
    assert any(f.escape and "_C" in f.name for f in found), found


CE = ("torch.nn.functional.cross_entropy",)


@pytest.mark.parametrize(
    "cells",
    [
        ("f, _ = F, None\n", "def ce(x, t):\n    return f.cross_entropy(x, t)\n"),
        ("(f,) = (F,)\n", "def ce(x, t):\n    return f.cross_entropy(x, t)\n"),
        ("for f in [F]:\n    pass\n", "def ce(x, t):\n    return f.cross_entropy(x, t)\n"),
        ("def ce(x, t):\n    (f := F)\n    return f.cross_entropy(x, t)\n",),
        ("f: object = F\n", "def ce(x, t):\n    return f.cross_entropy(x, t)\n"),
        ("class A:\n    f = F\n", "def ce(x, t):\n    return A.f.cross_entropy(x, t)\n"),
        ("def ce(x, t):\n    return {'f': F}['f'].cross_entropy(x, t)\n",),
        # a name bound to two modules: the resolver cannot know which one runs
        ("f = torch\nif True:\n    f = F\n", "def ce(x, t):\n    return f.cross_entropy(x, t)\n"),
        (
            "def ce(x, t):\n    f = torch\n    if x is not None:\n        f = F\n    return f.cross_entropy(x, t)\n",
        ),
        # a global bound inside a function, and a rebound builtin that returns its argument
        (
            "def setf():\n    global f\n    f = F\nsetf()\n",
            "def ce(x, t):\n    return f.cross_entropy(x, t)\n",
        ),
        ("print = lambda m: m\n", "def ce(x, t):\n    return print(F).cross_entropy(x, t)\n"),
        # a module patched through a list item, at top level (it voids every part)
        ("[torch][0].log_softmax = None\n", "def ce(x, t):\n    return x\n"),
    ],
)
def test_a_module_used_as_a_value_the_resolver_does_not_follow_is_an_escape(cells):
    found = findings(*cells, function="ce", forbidden=CE)
    assert any(f.escape and "used as a value" in f.name for f in found), found


@pytest.mark.parametrize(
    "cells",
    [
        (
            "class A:\n    import torch.nn.functional as f\n",
            "def ce(x, t):\n    return A.f.cross_entropy(x, t)\n",
        ),
        ("def ce(x, t):\n    return getattr((lambda: F)(), 'cross_entropy')(x, t)\n",),
    ],
)
def test_class_body_imports_and_getattr_on_results_are_caught(cells):
    found = findings(*cells, function="ce", forbidden=CE)
    assert found, found


def test_getattr_on_a_call_result_finds_the_forbidden_name():
    cells = (
        "def _lib():\n    import torch.nn.functional as m\n    return m\n",
        "def ce(x, t):\n    return getattr(_lib(), 'cross_entropy')(x, t)\n",
    )
    found = findings(*cells, function="ce", forbidden=CE)
    assert any(not f.escape and f.name.endswith("cross_entropy") for f in found), found


@pytest.mark.parametrize(
    "cells",
    [
        (
            "print(F)\ndir(torch)\nhelp(nn)\n",
            "def ce(x, t):\n    return -(t * x.log_softmax(1)).sum(1).mean()\n",
        ),
        (
            "f = F\nlib = torch.nn.functional\n",
            "def ce(x, t):\n    return -(t * f.log_softmax(x, 1)).sum(1).mean() + lib.relu(x).sum() * 0\n",
        ),
        (
            "def ce(x, t, lib=F):\n    assert isinstance(x, torch.Tensor) and hasattr(lib, 'relu')\n    return -(t * lib.log_softmax(x.to(torch.float32), 1)).sum(1).mean()\n",
        ),
        (
            "class Net(nn.Module):\n    act = F.relu\n    def forward(self, x):\n        return self.act(x)\n",
            "def ce(x, t):\n    return -(t * F.log_softmax(x, 1)).sum(1).mean()\n",
        ),
        (
            "F = torch.nn.functional\n",
            "def ce(x, t):\n    return -(t * F.log_softmax(x, 1)).sum(1).mean()\n",
        ),
    ],
)
def test_ordinary_uses_of_modules_are_not_escapes(cells):
    assert findings(*cells, function="ce", forbidden=CE) == []
