"""The object server that runs inside the sandbox child: a dumb executor of requests.

The trusted judge sends requests (run a cell, call a name or a handle, read an
attribute, iterate, import a module); this file executes them in the
submission's namespace and answers with plain data only. It compares nothing
and decides nothing: the student can rewrite everything here, and the judge
assumes they do.

Values that can cross back are tensors, NumPy arrays, numbers, strings, None
and tuples, lists and dicts of them. Anything else (modules, models,
optimizers, bound methods, generators) stays here in a table and crosses as a
handle, ``{"__handle__": id, "type": "pkg.Class"}``; later requests refer to
it by id. This file is copied into the sandbox, so it imports only the
standard library, NumPy and torch.
"""

from __future__ import annotations

import itertools
import time
import traceback
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

NDARRAY_TAG = "__ndarray__"
TENSOR_TAG = "__tensor__"
HANDLE_TAG = "__handle__"
MAX_DEPTH = 12  # deeper structures stay behind as handles
MAX_ITEMS = 4096  # per container; longer ones stay behind as handles
MAX_ITER = 4096  # items an ``iter`` request takes from an iterator
MAX_VALUES = 100_000  # values one answer may hold; the rest stays behind as handles


class RecordOps(TorchDispatchMode):
    """Records the names of the ATen operators that run while it is active.

    A second signal only: it runs where the student's code runs, so it can take
    points away but never give them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


class RecordFunctions(TorchFunctionMode):
    """Records the names of the torch functions called while it is active, into the same
    set: ``F.cross_entropy`` is seen by name even where its ATen decomposition (soft
    targets) runs no ``nll_loss``. A second signal only, like ``RecordOps``."""

    def __init__(self, ops: set[str]) -> None:
        super().__init__()
        self.ops = ops

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", None)
        if isinstance(name, str) and not name.startswith("__"):
            self.ops.add(name)
        return func(*args, **(kwargs or {}))


def describe_error(exc: BaseException) -> dict:
    """The exception's type, first message line (with the lines it introduces, when it
    ends in a colon) and the student's line that raised it."""
    where = ""
    try:
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename.startswith("<cell "):
                where = f"{frame.filename[1:-1]}, line {frame.lineno}"
                break
    except Exception:
        pass
    try:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        message = lines[0] if lines else ""
        if message.endswith(":"):  # "Error(s) in loading state_dict for Net:" and its keys
            message = " ".join(lines[:6])
    except Exception:
        message = ""
    kind = type(exc).__name__ if isinstance(type(exc).__name__, str) else "Exception"
    return {"type": kind[:100], "message": message[:400], "where": where[:200]}


class ObjectServer:
    """Executes the judge's requests in one submission's namespace."""

    def __init__(self, namespace: dict, device: str) -> None:
        self.namespace = namespace
        self.device = device
        self.handles: dict[int, Any] = {}
        self.counter = itertools.count(1)
        self.budget = MAX_VALUES

    # ------------------------------------------------------------------ values

    def to_student(self, value: Any) -> Any:
        """Judge data to objects: tensors move to the device, tags become arrays or handles."""
        if isinstance(value, torch.Tensor):
            return value.to(self.device)
        if isinstance(value, dict):
            if set(value) == {NDARRAY_TAG}:
                return value[NDARRAY_TAG].numpy().copy()
            if set(value) == {HANDLE_TAG}:
                key = value[HANDLE_TAG]
                if key not in self.handles:
                    raise LookupError("this object no longer exists in the sandbox")
                return self.handles[key]
            return {key: self.to_student(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.to_student(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.to_student(item) for item in value)
        return value

    def keep(self, value: Any) -> dict:
        key = next(self.counter)
        self.handles[key] = value
        kind = type(value)
        return {HANDLE_TAG: key, "type": f"{kind.__module__}.{kind.__qualname__}"[:200]}

    def to_judge(self, value: Any, depth: int = 0) -> Any:
        """Objects to data the judge reads with ``torch.load(weights_only=True)``.

        Tensor subclasses are reduced to their plain storage, whatever they claim
        about themselves; everything else that is not plain data becomes a handle.
        """
        if isinstance(value, torch.Tensor):
            plain = torch.Tensor.as_subclass(value, torch.Tensor).detach()
            return {TENSOR_TAG: plain.to("cpu").clone(), "device": plain.device.type}
        if isinstance(value, np.ndarray):
            if value.dtype == object or not value.dtype.isbuiltin:
                return self.keep(value)
            return {NDARRAY_TAG: torch.from_numpy(np.ascontiguousarray(value).copy())}
        if isinstance(value, np.generic) and type(value.item()) in (bool, int, float):
            return value.item()
        if value is None or type(value) in (bool, int, float, str):
            return value
        if depth >= MAX_DEPTH:
            return self.keep(value)
        if type(value) in (tuple, list) and len(value) <= min(MAX_ITEMS, self.budget):
            self.budget -= len(value)
            items = [self.to_judge(item, depth + 1) for item in value]
            return tuple(items) if type(value) is tuple else items
        if (
            type(value) in (dict, OrderedDict)
            and len(value) <= min(MAX_ITEMS, self.budget)
            and all(type(key) is str for key in value)
        ):
            self.budget -= len(value)
            return {key: self.to_judge(item, depth + 1) for key, item in value.items()}
        return self.keep(value)

    # ------------------------------------------------------------------ requests

    def target(self, spec: dict) -> Any:
        """``{"global": name}`` or ``{"handle": id}``, optionally with ``"attr": name``."""
        found = self.lookup(spec)
        return getattr(found, spec["attr"]) if "attr" in spec else found

    def lookup(self, spec: dict) -> Any:
        if "handle" in spec:
            if spec["handle"] not in self.handles:
                raise LookupError("this object no longer exists in the sandbox")
            return self.handles[spec["handle"]]
        if "global" not in spec:
            raise ValueError("malformed request")
        name = spec["global"]
        if name not in self.namespace:
            defined = sorted(
                key
                for key, value in self.namespace.items()
                if callable(value) and not key.startswith("_")
            )
            hint = f" (defined: {', '.join(defined[:8])})" if defined else ""
            raise NameError(f"{name} is not defined{hint}")
        return self.namespace[name]

    def handle(self, request: dict) -> dict:
        """Answer one request; never raises (student code may raise anything)."""
        op = request.get("op")
        recorder = RecordOps() if request.get("trace") else None
        seed = int(request.get("seed", 0))
        torch.manual_seed(seed)
        np.random.seed(seed % (2**32))
        started = time.perf_counter()
        try:
            action = self.prepare(op, request)  # decoding arguments is not traced
            if recorder is not None:
                with recorder, RecordFunctions(recorder.ops):
                    value = action()
            else:
                value = action()
            self.budget = MAX_VALUES
            response = {"ok": True, "value": self.to_judge(value)}
        except BaseException as exc:  # SystemExit and KeyboardInterrupt included
            response = {"ok": False, "error": describe_error(exc)}
        response["seconds"] = time.perf_counter() - started
        response["ops"] = sorted(recorder.ops) if recorder is not None else None
        return response

    def prepare(self, op: str, request: dict):
        """The request as a call without arguments: what runs under the trace."""
        if op == "exec":
            code = compile(request["source"], f"<cell {request['cell']}>", "exec")
            return lambda: exec(code, self.namespace)
        if op == "import":
            return lambda: self.import_module(request["module"])
        target = self.target(request["target"])
        if op == "get":
            return lambda: target
        if op == "getitem":
            key = self.to_student(request["key"])
            return lambda: target[key]
        if op == "iter":
            return lambda: list(itertools.islice(iter(target), MAX_ITER))
        if op == "call":
            args = list(self.to_student(tuple(request.get("args", ()))))
            kwargs = self.to_student(dict(request.get("kwargs", {})))
            grad = request.get("grad")
            if grad is None:
                return lambda: target(*args, **kwargs)
            return lambda: self.call_with_grads(target, args, kwargs, grad)
        raise ValueError(f"unknown request {op!r}")

    @staticmethod
    def import_module(name: str) -> Any:
        module = __import__(name)
        for part in name.split(".")[1:]:
            module = getattr(module, part)
        return module

    def call_with_grads(self, function, args: list, kwargs: dict, grad: dict) -> dict:
        """Call with some tensor arguments requiring grad; backpropagate ``grad_output``.

        Returns ``{"value": output, "grads": [gradient or None per argument]}``, or
        ``"grads": "..."`` explaining why there are none.
        """
        leaves = []
        for index in grad["wrt"]:
            args[index] = args[index].detach().requires_grad_(True)
            leaves.append(args[index])
        output = function(*args, **kwargs)
        if not isinstance(output, torch.Tensor):
            return {"value": output, "grads": None}
        if not output.requires_grad:
            return {
                "value": output,
                "grads": "the output does not depend on the inputs through autograd",
            }
        grad_output = grad["grad_output"].to(output.device)
        if output.shape != grad_output.shape:
            return {"value": output, "grads": None}
        output.backward(grad_output)
        return {"value": output, "grads": [leaf.grad for leaf in leaves]}
