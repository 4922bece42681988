"""Probes: the small functions that call a student's code inside the sandbox.

A probe receives plain inputs from the trusted parent, calls one student
function and returns raw outputs only. It compares nothing and knows no
expected value; the trusted judge does that. This file is copied into the
sandbox beside ``server.py`` and imports only the standard library, NumPy
and torch.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

NDARRAY_TAG = "__ndarray__"
OPAQUE_TAG = "__type__"
MAX_DEPTH = 8


# --------------------------------------------------------------------------- values


def to_student(value: Any, device: str) -> Any:
    """Decode parent inputs: tagged arrays become NumPy arrays, tensors move to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        if set(value) == {NDARRAY_TAG}:
            return value[NDARRAY_TAG].numpy().copy()
        return {key: to_student(item, device) for key, item in value.items()}
    if isinstance(value, list):
        return [to_student(item, device) for item in value]
    if isinstance(value, tuple):
        return tuple(to_student(item, device) for item in value)
    return value


def to_safe(value: Any, depth: int = 0) -> Any:
    """Turn a student's output into data that ``torch.load(weights_only=True)`` reads.

    Tensor subclasses are reduced to their plain storage (whatever they claim about
    themselves), arrays are tagged, and anything else becomes a description of its
    type, which the judge reports as a wrong type.
    """
    if depth > MAX_DEPTH:
        return {OPAQUE_TAG: "nested too deeply"}
    if isinstance(value, torch.Tensor):
        plain = torch.Tensor.as_subclass(value, torch.Tensor).detach()
        return {"__tensor__": plain.to("cpu").clone(), "device": plain.device.type}
    if isinstance(value, np.ndarray):
        if value.dtype == object or not value.dtype.isbuiltin:
            return {OPAQUE_TAG: f"numpy.ndarray of dtype {value.dtype}"}
        return {NDARRAY_TAG: torch.from_numpy(np.ascontiguousarray(value).copy())}
    if isinstance(value, np.generic):
        return to_safe(value.item(), depth + 1)
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) in (tuple, list):
        items = [to_safe(item, depth + 1) for item in value]
        return tuple(items) if type(value) is tuple else items
    if type(value) is dict and all(type(key) is str for key in value):
        return {key: to_safe(item, depth + 1) for key, item in value.items()}
    return {OPAQUE_TAG: f"{type(value).__module__}.{type(value).__qualname__}"}


# --------------------------------------------------------------------------- tracing


class OpRecorder(TorchDispatchMode):
    """Records the names of the ATen operators that run while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


_RECORDER: OpRecorder | None = None


def invoke(function: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call student code, tracing ATen operators when the probe asks for it."""
    if _RECORDER is None:
        return function(*args, **kwargs)
    with _RECORDER:
        return function(*args, **kwargs)


def describe_error(exc: BaseException) -> str:
    """One line for feedback: the exception and the student's line that raised it."""
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.startswith("<cell "):
            where = f" ({frame.filename[1:-1]}, line {frame.lineno})"
            break
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return (text[:400] + where).strip()


# --------------------------------------------------------------------------- kinds


def _lookup(namespace: dict, name: str) -> Callable:
    if name not in namespace:
        defined = sorted(
            key for key, value in namespace.items() if callable(value) and not key.startswith("_")
        )
        hint = f" (defined: {', '.join(defined[:8])})" if defined else ""
        raise NameError(f"{name} is not defined{hint}")
    return namespace[name]


def probe_call(namespace: dict, spec: dict, device: str) -> dict:
    function = _lookup(namespace, spec["function"])
    args = to_student(spec.get("args", ()), device)
    kwargs = to_student(spec.get("kwargs", {}), device)
    return {"value": invoke(function, *args, **kwargs)}


def probe_grad(namespace: dict, spec: dict, device: str) -> dict:
    """Call with some tensor arguments requiring grad, backpropagate ``grad_output``."""
    function = _lookup(namespace, spec["function"])
    args = list(to_student(spec.get("args", ()), device))
    kwargs = to_student(spec.get("kwargs", {}), device)
    leaves = []
    for index in spec["requires_grad"]:
        args[index] = args[index].detach().requires_grad_(True)
        leaves.append(args[index])
    output = invoke(function, *args, **kwargs)
    if not isinstance(output, torch.Tensor):
        return {"value": output, "grads": None}
    if not output.requires_grad:
        return {
            "value": output,
            "grads": "the output does not depend on the inputs through autograd",
        }
    grad_output = spec["grad_output"].to(device)
    if output.shape != grad_output.shape:
        return {"value": output, "grads": None}
    output.backward(grad_output)
    return {"value": output, "grads": [leaf.grad for leaf in leaves]}


LAYERS: dict[str, Callable[..., torch.nn.Module]] = {
    "conv2d": torch.nn.Conv2d,
    "linear": torch.nn.Linear,
    "relu": torch.nn.ReLU,
    "tanh": torch.nn.Tanh,
    "flatten": torch.nn.Flatten,
    "maxpool2d": torch.nn.MaxPool2d,
    "avgpool2d": torch.nn.AvgPool2d,
    "adaptiveavgpool2d": torch.nn.AdaptiveAvgPool2d,
    "batchnorm2d": torch.nn.BatchNorm2d,
    "dropout": torch.nn.Dropout,
}


def build_model(spec: dict, device: str) -> torch.nn.Module:
    """A small ``nn.Sequential`` the trusted side describes: layers, weights, dtype, mode.

    ``spec = {"layers": [["conv2d", 3, 4, 3], ["relu"], ["flatten"], ["linear", 64, 10]],
    "state": {name: tensor}, "dtype": "float64", "train": False}``
    """
    layers = []
    for layer in spec["layers"]:
        name, *args = layer
        layers.append(LAYERS[name](*args))
    model = torch.nn.Sequential(*layers).to(getattr(torch, spec.get("dtype", "float32")))
    if spec.get("state") is not None:
        model.load_state_dict(spec["state"])
    model.train(bool(spec.get("train", False)))
    return model.to(device)


def _model_report(model: torch.nn.Module, before: dict) -> dict:
    after = model.state_dict()
    return {
        "model_training": model.training,
        "model_grads": [
            p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters()
        ],
        "model_changed": any(not torch.equal(before[k], after[k]) for k in before),
    }


def probe_model_call(namespace: dict, spec: dict, device: str) -> dict:
    """Call ``function(model, *args, **kwargs)`` on a model built from ``spec['model']``.

    Returns the output and what the call did to the model (mode, gradients, weights),
    e.g. to check that an attack restores eval/train mode and leaves no gradients.
    """
    function = _lookup(namespace, spec["function"])
    model = build_model(spec["model"], device)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    args = to_student(spec.get("args", ()), device)
    kwargs = to_student(spec.get("kwargs", {}), device)
    output = invoke(function, model, *args, **kwargs)
    return {"value": output, **_model_report(model, before)}


def _load_ordered(module: torch.nn.Module, tensors: list) -> None:
    targets = list(module.parameters()) + [b for b in module.buffers() if b.is_floating_point()]
    if len(targets) != len(tensors):
        raise ValueError(
            f"the module has {len(targets)} parameter and buffer tensors, the reference has {len(tensors)}"
        )
    with torch.no_grad():
        for index, (target, value) in enumerate(zip(targets, tensors)):
            if target.shape != value.shape:
                raise ValueError(
                    f"tensor {index} of the module has shape {tuple(target.shape)}, expected {tuple(value.shape)}"
                )
            target.copy_(value)


def probe_module(namespace: dict, spec: dict, device: str) -> dict:
    """Build the student's ``nn.Module`` class, optionally load weights, run ``forward``.

    ``load`` is ``"state_dict"`` (names must match), ``"ordered"`` (parameters, then
    floating buffers, in registration order) or absent (keep the module's own init).
    Returns the output, the parameter count and the parameter shapes.
    """
    cls = _lookup(namespace, spec["function"])
    module = invoke(
        cls,
        *to_student(spec.get("init_args", ()), "cpu"),
        **to_student(spec.get("init_kwargs", {}), "cpu"),
    )
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"{spec['function']}(...) did not return an nn.Module")
    if spec.get("dtype"):
        module = module.to(getattr(torch, spec["dtype"]))
    if spec.get("load") == "state_dict":
        module.load_state_dict(spec["state"])
    elif spec.get("load") == "ordered":
        _load_ordered(module, list(spec["state"]))
    module = module.to(device).train(bool(spec.get("train", False)))
    result = {
        "parameter_count": sum(p.numel() for p in module.parameters()),
        "parameter_shapes": [list(p.shape) for p in module.parameters()],
    }
    inputs = to_student(spec.get("inputs"), device)
    if inputs is not None:
        with torch.set_grad_enabled(bool(spec.get("grad", False))):
            result["value"] = invoke(module, *inputs)
    return result


PROBES: dict[str, Callable[[dict, dict, str], dict]] = {
    "call": probe_call,
    "grad": probe_grad,
    "model_call": probe_model_call,
    "module": probe_module,
}


def run_probe(namespace: dict, spec: dict, device: str) -> dict:
    """Run one probe and return a payload of safe values (never raises)."""
    kind = PROBES.get(spec.get("kind", "call"))
    if kind is None:
        return {"ok": False, "error": f"internal: unknown probe kind {spec.get('kind')!r}"}
    torch.manual_seed(int(spec.get("seed", 0)))
    np.random.seed(int(spec.get("seed", 0)) % (2**32))
    global _RECORDER
    recorder = _RECORDER = OpRecorder() if spec.get("trace_ops") else None
    start = time.perf_counter()
    try:
        raw = kind(namespace, spec, device)
        payload = {"ok": True, **{key: to_safe(value) for key, value in raw.items()}}
    except BaseException as exc:  # student code may raise anything, SystemExit included
        payload = {"ok": False, "error": describe_error(exc)}
    _RECORDER = None
    payload["seconds"] = time.perf_counter() - start
    payload["ops"] = sorted(recorder.ops) if recorder is not None else None
    return payload
