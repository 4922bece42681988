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


class ProbeError(Exception):
    """The probe could not call the student's code as asked (not the student's fault)."""


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
    return {"value": function(*args, **kwargs)}


def probe_grad(namespace: dict, spec: dict, device: str) -> dict:
    """Call with some tensor arguments requiring grad, backpropagate ``grad_output``."""
    function = _lookup(namespace, spec["function"])
    args = list(to_student(spec.get("args", ()), device))
    kwargs = to_student(spec.get("kwargs", {}), device)
    leaves = []
    for index in spec["requires_grad"]:
        args[index] = args[index].detach().requires_grad_(True)
        leaves.append(args[index])
    output = function(*args, **kwargs)
    if not isinstance(output, torch.Tensor):
        return {"value": output, "grads": None}
    if not output.requires_grad:
        return {"value": output, "grads": "the output does not depend on the inputs through autograd"}
    grad_output = spec["grad_output"].to(device)
    if output.shape != grad_output.shape:
        return {"value": output, "grads": None}
    output.backward(grad_output)
    return {"value": output, "grads": [leaf.grad for leaf in leaves]}


PROBES: dict[str, Callable[[dict, dict, str], dict]] = {
    "call": probe_call,
    "grad": probe_grad,
}


def run_probe(namespace: dict, spec: dict, device: str) -> dict:
    """Run one probe and return a payload of safe values (never raises)."""
    kind = PROBES.get(spec.get("kind", "call"))
    if kind is None:
        return {"ok": False, "error": f"internal: unknown probe kind {spec.get('kind')!r}"}
    torch.manual_seed(int(spec.get("seed", 0)))
    np.random.seed(int(spec.get("seed", 0)) % (2**32))
    recorder = OpRecorder() if spec.get("trace_ops") else None
    start = time.perf_counter()
    try:
        if recorder is not None:
            with recorder:
                raw = kind(namespace, spec, device)
        else:
            raw = kind(namespace, spec, device)
        payload = {"ok": True, **{key: to_safe(value) for key, value in raw.items()}}
    except BaseException as exc:  # student code may raise anything, SystemExit included
        payload = {"ok": False, "error": describe_error(exc)}
    payload["seconds"] = time.perf_counter() - start
    payload["ops"] = sorted(recorder.ops) if recorder is not None else None
    return payload
