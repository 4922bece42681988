"""How a hidden suite is written: seeded cases, each a probe and a trusted reference.

A suite module ``autograder/suites/<assignment>.py`` defines ``SUITE`` and one
builder per rubric check::

    SUITE = Suite("m06_02_convolution")

    @SUITE.check("conv2d_stride")
    def conv2d_stride(fx: Fixtures) -> Iterator[Case]:
        x, w = fx.randn(2, 3, 9, 9), fx.randn(4, 3, 3, 3)
        yield Case("stride=2", call("conv2d", x.float(), w.float(), stride=2),
                   expected=F.conv2d(x.float().double(), w.float().double(), stride=2))

The probe runs in the sandbox and returns raw outputs; ``expected`` never
leaves this process. Builders run once per batch.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from autograder.fixtures import Fixtures, loaded
from autograder.rubric import Rubric

NDARRAY_TAG = "__ndarray__"

# A comparator gets the decoded probe payload and the expected value and returns
# a failure message, or None when the output is right.
Comparator = Callable[[dict, Any, float, float], str | None]


@dataclass
class Case:
    label: str
    probe: dict
    expected: Any
    compare: Comparator | None = None


def ndarray(tensor: torch.Tensor) -> dict:
    """Send a tensor to the student as a NumPy array."""
    return {NDARRAY_TAG: tensor.detach().cpu().contiguous()}


def call(function: str, *args: Any, **kwargs: Any) -> dict:
    """Probe: call ``function(*args, **kwargs)`` and return its output."""
    return {"kind": "call", "function": function, "args": tuple(args), "kwargs": dict(kwargs)}


def grad(
    function: str,
    *args: Any,
    requires_grad: tuple[int, ...],
    grad_output: torch.Tensor,
    **kwargs: Any,
) -> dict:
    """Probe: call with some arguments requiring grad; return output and their gradients."""
    return {
        "kind": "grad",
        "function": function,
        "args": tuple(args),
        "kwargs": dict(kwargs),
        "requires_grad": tuple(requires_grad),
        "grad_output": grad_output,
    }


class Suite:
    def __init__(self, assignment: str) -> None:
        self.assignment = assignment
        self.builders: dict[str, Callable[[Fixtures], Iterator[Case]]] = {}

    def check(self, check_id: str):
        def register(builder: Callable[[Fixtures], Iterator[Case]]):
            if check_id in self.builders:
                raise ValueError(f"check {check_id} is defined twice")
            self.builders[check_id] = builder
            return builder

        return register

    def build(self, rubric: Rubric) -> dict[str, list[Case]]:
        """Cases for every rubric check, in rubric order; the suite and rubric must agree."""
        rubric_ids = [check.id for check in rubric.checks]
        missing = [c for c in rubric_ids if c not in self.builders]
        extra = [c for c in self.builders if c not in rubric_ids]
        if missing or extra:
            raise ValueError(
                f"suite and rubric disagree: no builder for {missing}, builders not in the rubric {extra}"
            )
        cases = {}
        for check in rubric.checks:
            with warnings.catch_warnings():  # reference operators may warn about performance
                warnings.simplefilter("ignore")
                built = list(self.builders[check.id](Fixtures(f"{rubric.assignment}/{check.id}")))
            if not built:
                raise ValueError(f"check {check.id} produced no cases")
            cases[check.id] = built
        return cases


def load_suite(assignment: str) -> Suite:
    module = importlib.import_module(f"autograder.suites.{assignment}")
    return module.SUITE


def to_numpy_expected(tensor: torch.Tensor) -> np.ndarray:
    """Mark an expected value as 'the student must return a NumPy array'."""
    return tensor.detach().cpu().numpy()


def model_call(function: str, model: dict, *args: Any, **kwargs: Any) -> dict:
    """Probe: ``function(model, *args, **kwargs)`` on a model the sandbox builds from ``model``.

    ``model`` is ``{"layers": [...], "state": state_dict, "dtype": "float64", "train": False}``
    (see ``child/probes.py:build_model``). The payload adds ``model_training``,
    ``model_grads`` (per parameter: has a non-zero .grad) and ``model_changed``.
    """
    return {
        "kind": "model_call",
        "function": function,
        "model": model,
        "args": tuple(args),
        "kwargs": dict(kwargs),
    }


def module(
    cls: str,
    *init_args: Any,
    inputs: tuple | None = None,
    state: dict | list | None = None,
    load: str | None = None,
    dtype: str | None = None,
    train: bool = False,
    **init_kwargs: Any,
) -> dict:
    """Probe: build the student's ``nn.Module`` class, load weights, run forward on ``inputs``.

    The payload has ``parameter_count``, ``parameter_shapes`` and (with inputs) ``value``.
    """
    return {
        "kind": "module",
        "function": cls,
        "init_args": tuple(init_args),
        "init_kwargs": dict(init_kwargs),
        "inputs": inputs,
        "state": state,
        "load": load,
        "dtype": dtype,
        "train": train,
    }


def module_case(
    fx: Fixtures,
    label: str,
    cls: str,
    reference: torch.nn.Module,
    init_args: tuple,
    shapes: list[tuple],
    train: bool = False,
) -> Case:
    """The student's ``cls(*init_args)`` and ``reference`` with the same seeded weights
    (``load="ordered"``), on seeded inputs; expected output in float64."""
    state = fx.module_state(reference)
    inputs = tuple(fx.randn(*shape).float() for shape in shapes)
    with torch.no_grad():
        expected = loaded(reference, state, train)(*(x.double() for x in inputs))
    probe = module(cls, *init_args, inputs=inputs, state=state, load="ordered", train=train)
    return Case(label, probe, expected)
