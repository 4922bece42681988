"""The judge's view of a submission: ``student.<name>`` calls, handles, and bounded decoding.

A hidden test writes ``y = student.conv2d(x, w, stride=2)``. The call becomes a
request to the object server that runs the submission (``child/objects.py``):
in the sandbox when grading, in this process when an instructor tests the
solution notebook. What comes back is plain data, validated here before
anything else touches it:

- at most ``MAX_NODES`` values (shared references counted every time they are
  reached) and ``MAX_DEPTH`` levels, walked without recursion;
- only exact tensors, arrays, numbers, strings, None, and tuples, lists and
  dicts with string keys; strings are cut to ``MAX_TEXT`` characters and made
  valid UTF-8 (lone surrogates replaced).

Objects that cannot cross stay in the sandbox and arrive as :class:`Handle`:
``net = student.UNet(3, 21); net.load_state_dict(state); y = net(x)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch


NDARRAY_TAG = "__ndarray__"
TENSOR_TAG = "__tensor__"
HANDLE_TAG = "__handle__"
MAX_NODES = 200_000
MAX_DEPTH = 16
MAX_TEXT = 20_000
MAX_INT_BITS = 4096


class OutputError(Exception):
    """What the submission sent back is not plain data within bounds."""


class StudentError(Exception):
    """The student's code raised; the message is the type, message and the student's line."""


class SandboxLimit(Exception):
    """A time, CPU or memory limit ended the call, or the sandbox process died."""


class StaleHandle(Exception):
    """A handle from a sandbox process that has since been restarted."""


def clean_text(text: str, limit: int = MAX_TEXT) -> str:
    """Valid UTF-8, at most ``limit`` characters: safe to write anywhere."""
    if len(text) > limit:
        text = text[:limit] + "…"
    return text.encode("utf-8", "replace").decode("utf-8")


# --------------------------------------------------------------------------- decoding


def _validate(value: Any) -> None:
    """Walk without recursion; raise :class:`OutputError` on anything unexpected."""
    import torch  # here, not at the top: launching a sandbox worker needs no torch

    stack = [(value, 0)]
    visits = 0
    while stack:
        item, depth = stack.pop()
        visits += 1
        if visits > MAX_NODES:
            raise OutputError(f"the output has more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise OutputError(f"the output is nested more than {MAX_DEPTH} levels deep")
        kind = type(item)
        if item is None or kind in (bool, float, str, torch.Tensor):
            continue
        if kind is int:
            if item.bit_length() > MAX_INT_BITS:
                raise OutputError("the output has an integer too large to compare")
            continue
        if kind in (list, tuple):
            if visits + len(stack) + len(item) > MAX_NODES:
                raise OutputError(f"the output has more than {MAX_NODES} values")
            stack.extend((element, depth + 1) for element in item)
            continue
        if kind is dict:
            if visits + len(stack) + len(item) > MAX_NODES:
                raise OutputError(f"the output has more than {MAX_NODES} values")
            for key, element in item.items():
                if type(key) is not str:
                    raise OutputError("the output has a dict key that is not a string")
                stack.append((element, depth + 1))
            continue
        raise OutputError("the output holds an object that is not plain data")


def _tensor(item: dict) -> torch.Tensor:
    import torch

    tensor = item[TENSOR_TAG]
    if type(tensor) is not torch.Tensor or tensor.layout != torch.strided:
        raise OutputError("the output holds a malformed tensor")
    device = item.get("device")
    if device == "cuda" and torch.cuda.is_available():
        return tensor.to("cuda")
    if device not in ("cpu", "cuda"):
        raise OutputError("the output holds a tensor on an unknown device")
    return tensor


def _convert(item: Any, session: Session) -> Any:
    import torch

    kind = type(item)
    if kind is str:
        return clean_text(item)
    if kind is list:
        return [_convert(element, session) for element in item]
    if kind is tuple:
        return tuple(_convert(element, session) for element in item)
    if kind is dict:
        keys = set(item)
        if TENSOR_TAG in keys and keys <= {TENSOR_TAG, "device"}:
            return _tensor(item)
        if keys == {NDARRAY_TAG}:
            if type(item[NDARRAY_TAG]) is not torch.Tensor:
                raise OutputError("the output holds a malformed array")
            return item[NDARRAY_TAG].numpy()
        if HANDLE_TAG in keys and keys <= {HANDLE_TAG, "type"}:
            if type(item[HANDLE_TAG]) is not int:
                raise OutputError("the output holds a malformed handle")
            return Handle(session, item[HANDLE_TAG], clean_text(str(item.get("type", "")), 200))
        return {clean_text(key, 200): _convert(element, session) for key, element in item.items()}
    return item


def accept(value: Any, session: Session) -> Any:
    """Untrusted decoded data to judge values: validated first, then converted."""
    _validate(value)
    return _convert(value, session)


def error_text(error: Any) -> str:
    """A student exception as one line: ``TypeError: message (cell 'x', line 3)``."""
    if not isinstance(error, dict):
        return "the submission's code failed"
    parts = {key: error.get(key) for key in ("type", "message", "where")}
    kind, message, where = (
        clean_text(value, 400) if type(value) is str else "" for value in parts.values()
    )
    text = f"{kind or 'Exception'}: {message}" if message else kind or "Exception"
    return text + (f" ({where})" if where else "")


# --------------------------------------------------------------------------- encoding


def to_wire(value: Any, session: Session) -> Any:
    """Trusted test data to what the object server reads: tensors, tagged arrays, handles."""
    import numpy as np
    import torch

    if isinstance(value, Handle):
        return value._h_ref(session)
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu").clone()
    if isinstance(value, np.ndarray):
        return {NDARRAY_TAG: torch.from_numpy(np.ascontiguousarray(value).copy())}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        items = [to_wire(item, session) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict):
        return {key: to_wire(item, session) for key, item in value.items()}
    return value


# --------------------------------------------------------------------------- sessions


@dataclass
class CallContext:
    """What the current hidden test allows a call: CPU seconds, whether to trace operators."""

    cpu_seconds: float = 10.0
    wall_seconds: float = 30.0
    trace: bool = False
    seed: int = 0
    ops: set[str] = field(default_factory=set)
    # The submission's CPU seconds so far, read by the sandbox server (outside the child)
    # when the last response left it; in-process (the solution), this process's CPU time.
    child_cpu: float = 0.0


class Session(Protocol):
    """One running submission: in this process (solution) or in the sandbox (grading)."""

    device: str
    generation: int

    def request(self, payload: dict, context: CallContext) -> Any:
        """Send one request; return the decoded ``value``, or raise."""


class Handle:
    """An object that stays in the sandbox: a model, an optimizer, a generator.

    ``handle(...)`` calls it, ``handle.method(...)`` calls a method,
    ``handle.get("name")`` reads an attribute, ``list(handle)`` iterates it and
    ``handle[key]`` indexes it: each is one request.
    """

    def __init__(self, session: Session, key: int, kind: str) -> None:
        self._h_session = session
        self._h_key = key
        self._h_kind = kind
        self._h_generation = session.generation

    def _h_ref(self, session: Session) -> dict:
        if session is not self._h_session or self._h_generation != session.generation:
            raise StaleHandle(
                "this object no longer exists: the sandbox was restarted after an earlier failure"
            )
        return {HANDLE_TAG: self._h_key}

    def _h_target(self, attr: str | None = None) -> dict:
        target = {"handle": self._h_ref(self._h_session)[HANDLE_TAG]}
        return target if attr is None else {**target, "attr": attr}

    def __getattr__(self, name: str) -> RemoteCallable:
        if name.startswith("_h_") or name.startswith("__"):
            raise AttributeError(name)
        return RemoteCallable(self._h_session, lambda: self._h_target(name), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return RemoteCallable(self._h_session, self._h_target, self._h_kind)(*args, **kwargs)

    def get(self, name: str) -> Any:
        """The attribute ``name`` as a value (or a handle)."""
        return _request(self._h_session, {"op": "get", "target": self._h_target(name)})

    def __iter__(self) -> Iterator[Any]:
        return iter(_request(self._h_session, {"op": "iter", "target": self._h_target()}))

    def __getitem__(self, key: Any) -> Any:
        payload = {"op": "getitem", "target": self._h_target(), "key": key}
        return _request(self._h_session, payload)

    def __repr__(self) -> str:
        return f"<sandbox object of type {self._h_kind}>"


class RemoteCallable:
    """A student function, class or method; calling it is one request."""

    def __init__(self, session: Session, target, name: str) -> None:
        self._session = session
        self._target = target
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        payload = {"op": "call", "target": self._target(), "args": args, "kwargs": kwargs}
        return _request(self._session, payload)

    def with_grads(
        self, *args: Any, wrt: tuple[int, ...], grad_output: torch.Tensor, **kwargs: Any
    ) -> dict:
        """Call with the arguments at ``wrt`` requiring grad and backpropagate
        ``grad_output``: ``{"value": output, "grads": [one per wrt]}`` (or an explanation)."""
        payload = {
            "op": "call",
            "target": self._target(),
            "args": args,
            "kwargs": kwargs,
            "grad": {"wrt": list(wrt), "grad_output": grad_output},
        }
        return _request(self._session, payload)

    def __repr__(self) -> str:
        return f"<student's {self._name}>"


def _request(session: Session, payload: dict) -> Any:
    context = getattr(session, "context", None) or CallContext()
    wire = {key: to_wire(value, session) for key, value in payload.items()}
    wire["trace"] = context.trace
    wire["seed"] = context.seed
    return session.request(wire, context)


def handle_response(response: Any, session: Session, context: CallContext) -> Any:
    """Check a decoded response frame, record traced operators, return its value."""
    if type(response) is not dict:
        raise OutputError("the sandbox answered with something that is not a response")
    ops = response.get("ops")
    if type(ops) is list:
        context.ops.update(clean_text(op, 100) for op in ops[:1000] if type(op) is str)
    if response.get("ok") is not True:
        raise StudentError(error_text(response.get("error")))
    return accept(response.get("value"), session)


class Student:
    """The fixture hidden tests use: ``student.<name>`` is the submission's function or class."""

    def __init__(self, session: Session) -> None:
        self._session = session

    @property
    def device(self) -> str:
        return self._session.device

    def __getattr__(self, name: str) -> RemoteCallable:
        if name.startswith("_"):
            raise AttributeError(name)
        return RemoteCallable(self._session, lambda: {"global": name}, name)

    def cpu_seconds(self) -> float:
        """The submission's CPU seconds so far, as of the last response: measured by the
        sandbox server, which the student's code cannot reach (the clock for timing a
        model). Only differences between two calls mean anything."""
        context = getattr(self._session, "context", None)
        return context.child_cpu if context is not None else 0.0

    def weights(self) -> str:
        """The path, inside the sandbox, of the weights file submitted with the notebook;
        a check that needs it fails with the reason when there is none."""
        path = getattr(self._session, "weights_path", None)
        if path is None:
            from autograder.checks import CheckFailure

            problem = getattr(self._session, "weights_problem", "")
            raise CheckFailure(problem or "this assignment takes no weights file")
        return path

    def get(self, name: str) -> Any:
        """A global value of the submission (a constant, a list)."""
        return _request(self._session, {"op": "get", "target": {"global": name}})

    def lib(self, module: str) -> Handle:
        """A module imported in the sandbox, e.g. ``student.lib("cnnkit").load_ordered``:
        the shipped helper module and installed libraries build trusted inputs there."""
        return _request(self._session, {"op": "import", "module": module})
