"""Do probes call student code, trace ATen operators and return only plain data?"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from autograder.child.probes import build_model, run_probe, to_safe


class Liar(torch.Tensor):
    """A tensor subclass that claims to equal everything."""

    def __eq__(self, other):
        return True

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.allclose:
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


def test_to_safe_strips_subclasses_and_tags_arrays():
    liar = torch.zeros(3).as_subclass(Liar)
    safe = to_safe(liar)
    assert type(safe["__tensor__"]) is torch.Tensor and torch.equal(
        safe["__tensor__"], torch.zeros(3)
    )
    assert to_safe(np.ones(2))["__ndarray__"].dtype == torch.float64
    assert to_safe(object())["__type__"] == "builtins.object"
    assert to_safe(np.int64(3)) == 3
    assert to_safe((1, [2.0, None]))[1] == [2.0, None]


def test_call_probe_traces_convolution():
    namespace = {"f": lambda x, w: F.conv2d(x, w)}
    payload = run_probe(
        namespace,
        {
            "kind": "call",
            "function": "f",
            "args": (torch.ones(1, 1, 4, 4), torch.ones(1, 1, 2, 2)),
            "trace_ops": True,
        },
        "cpu",
    )
    assert payload["ok"] and "convolution" in payload["ops"]


def test_student_exceptions_become_messages():
    exec(
        compile("def f(x):\n    raise ValueError('bad shape')\n", "<cell f>", "exec"),
        namespace := {},
    )
    payload = run_probe(namespace, {"kind": "call", "function": "f", "args": (1,)}, "cpu")
    assert not payload["ok"] and payload["error"] == "ValueError: bad shape (cell f, line 2)"
    payload = run_probe({}, {"kind": "call", "function": "missing"}, "cpu")
    assert "missing is not defined" in payload["error"]
    payload = run_probe({"f": lambda: exit(0)}, {"kind": "call", "function": "f"}, "cpu")
    assert payload["error"].startswith("SystemExit")


def test_grad_probe_returns_gradients():
    payload = run_probe(
        {"f": lambda x: (x * x).sum(dim=1)},
        {
            "kind": "grad",
            "function": "f",
            "args": (torch.ones(2, 3),),
            "requires_grad": (0,),
            "grad_output": torch.ones(2),
        },
        "cpu",
    )
    assert torch.equal(payload["grads"][0]["__tensor__"], torch.full((2, 3), 2.0))


def test_model_call_reports_mode_and_gradients():
    spec = {
        "layers": [["flatten"], ["linear", 4, 2]],
        "dtype": "float64",
        "train": True,
        "state": None,
    }

    def careless(model, x):
        model.eval()
        model(x).sum().backward()
        return x

    payload = run_probe(
        {"f": careless},
        {
            "kind": "model_call",
            "function": "f",
            "model": spec,
            "args": (torch.ones(1, 4, dtype=torch.float64),),
        },
        "cpu",
    )
    assert payload["model_training"] is False and any(payload["model_grads"])
    assert isinstance(build_model(spec, "cpu")[1], torch.nn.Linear)
