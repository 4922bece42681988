"""Does the static scan see forbidden APIs through aliases and escape hatches, without false alarms?"""

from __future__ import annotations

import pytest

from autograder.staticcheck import scan

FORBIDDEN = ("torch.nn.functional.conv2d", "torch.conv2d", "torch.nn.Conv2d", "scipy")


@pytest.mark.parametrize(
    "source",
    [
        "import torch.nn.functional as F\ndef f(x, w):\n    return F.conv2d(x, w)\n",
        "from torch.nn.functional import conv2d as c\ndef f(x, w):\n    return c(x, w)\n",
        "import torch\ndef f(x, w):\n    return torch.conv2d(x, w)\n",
        "from torch import nn\ndef f(x):\n    return nn.Conv2d(3, 4, 3)(x)\n",
        "import torch.nn as tnn\nlayer = tnn.Conv2d\n",
        "from scipy import signal\n",
        "import scipy.signal\n",
    ],
)
def test_forbidden_apis_are_found_through_aliases(source):
    findings = scan("cell", source, FORBIDDEN)
    assert findings and not findings[0].escape
    assert "forbids" in findings[0].describe()


@pytest.mark.parametrize(
    ("source", "name"),
    [
        (
            "import torch.nn.functional as F\nf = getattr(F, 'conv' + '2d')\n",
            "getattr with a computed name",
        ),
        ("import torch.nn.functional as F\nf = getattr(F, 'conv2d')\n", "getattr(..., 'conv2d')"),
        ("import importlib\nF = importlib.import_module('torch.nn.functional')\n", "importlib"),
        ("F = __import__('torch.nn.functional')\n", "__import__"),
        ("import torch\nop = torch.ops.aten.convolution\n", "torch.ops"),
        ("import torch\nop = torch._C._nn\n", "torch._C"),
        ("y = eval('1 + 1')\n", "eval"),
        ("import sys\nm = sys.modules['torch']\n", "sys.modules"),
        (
            "from torch.utils._python_dispatch import TorchDispatchMode\n",
            "torch.utils._python_dispatch",
        ),
    ],
)
def test_escape_hatches_are_reported(source, name):
    findings = scan("cell", source, FORBIDDEN)
    assert any(f.escape and f.name == name for f in findings), findings


def test_clean_solution_code_has_no_findings(course):
    from autograder.notebook import read_source

    for cell in read_source(course.source_notebook("m06_02_convolution")):
        if cell.solution:
            assert scan(cell.grade_id, cell.source, FORBIDDEN) == [], cell.grade_id


def test_model_eval_and_strings_are_not_false_alarms():
    source = (
        "def f(model, x):\n    model.eval()\n    name = 'conv2d'\n    return x.unfold(2, 3, 1)\n"
    )
    assert scan("cell", source, FORBIDDEN) == []


def test_syntax_errors_are_left_to_run_time():
    assert scan("cell", "def f(:\n", FORBIDDEN) == []
