"""cnnkit.checks: the visible from-scratch check applies the grader's own rule."""

from __future__ import annotations

import types

import pytest

from autograder.course import Course
from autograder.rubric import load_rubric
from tests.conftest import load_cnnkit

cnnkit = load_cnnkit()
COURSE = Course.here()

NOTEBOOK = """
import threading
import torch
import torch.nn.functional as F
from torch.nn.functional import conv2d as imported_conv


def clean(x, w):
    cols = x.unfold(2, w.shape[-2], 1).unfold(3, w.shape[-1], 1)
    return torch.einsum("nchwij,ocij->nohw", cols, w)


def direct(x, w):
    return F.conv2d(x, w)


shortcut = F.conv2d


def through_alias(x, w):
    return shortcut(x, w)


def through_import(x, w):
    return imported_conv(x, w)


def pool_helper(x):
    return torch.nn.functional.max_pool2d(x, 2)


def through_helper(x, w):
    return pool_helper(x)


class Layer:
    def __call__(self, x, w):
        return F.conv2d(x, w)


def through_class(x, w):
    return Layer()(x, w)


def with_thread(x, w):
    threading.Thread(target=print).start()
    return clean(x, w)


def uses_numpy_only(x):
    import numpy as np

    return np.asarray(x) * 2


def uses_torch_in_numpy_part(x):
    return torch.as_tensor(x).numpy()
"""


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    """The definitions above, run as a notebook runs them (sources readable by inspect)."""
    path = tmp_path_factory.mktemp("nb") / "notebook_cells.py"
    path.write_text(NOTEBOOK)
    module = types.ModuleType("notebook_cells")
    module.__file__ = str(path)
    exec(compile(NOTEBOOK, str(path), "exec"), module.__dict__)
    import sys

    sys.modules["notebook_cells"] = module  # inspect.getsource finds sources through it
    yield module
    del sys.modules["notebook_cells"]


CONV = cnnkit.FORBIDDEN["conv_and_pool"]


def test_a_clean_function_passes(notebook, capsys):
    cnnkit.check_from_scratch(notebook.clean, CONV)
    assert "✓ clean from scratch" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("direct", "calls F.conv2d"),
        ("through_alias", "conv2d"),
        ("through_import", "conv2d"),
        ("through_helper", "calls F.max_pool2d (cell 'pool_helper'"),
        ("through_class", "calls F.conv2d (cell 'Layer'"),
        ("with_thread", "uses threading"),
    ],
)
def test_a_forbidden_call_fails_the_visible_check(notebook, name, says):
    with pytest.raises(AssertionError) as failure:
        cnnkit.check_from_scratch(getattr(notebook, name), CONV)
    assert says in str(failure.value)


def test_the_numpy_part_may_not_use_torch(notebook):
    cnnkit.check_from_scratch(notebook.uses_numpy_only, cnnkit.FORBIDDEN["numpy_only"])
    with pytest.raises(AssertionError, match="torch"):
        cnnkit.check_from_scratch(notebook.uses_torch_in_numpy_part, cnnkit.FORBIDDEN["numpy_only"])


def test_the_shipped_rule_is_the_graders_rule():
    rules = COURSE.helper_module / "rules.py"
    assert rules.read_text() == (COURSE.root / "autograder" / "staticcheck.py").read_text()


def test_the_visible_forbidden_lists_are_the_rubrics():
    """Every from-scratch part's forbidden names are one of cnnkit.FORBIDDEN's lists."""
    lists = {tuple(sorted(names)) for names in cnnkit.FORBIDDEN.values()}
    for assignment in COURSE.assignments():
        rubric = load_rubric(COURSE.rubric_path(assignment))
        for part in rubric.parts:
            if part.forbidden is not None and part.forbidden.names:
                assert tuple(sorted(part.forbidden.names)) in lists, (assignment, part.id)
