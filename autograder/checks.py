"""Comparison helpers for hidden tests: the ``check`` fixture.

A hidden test compares what the student returned with a trusted reference::

    check.close(student.conv2d(x, w, stride=2), ref.conv2d(x.double(), w.double(), stride=2))

On failure the helpers raise :class:`CheckFailure` with a message that names
what was compared and the measured error ("output: max abs error 3.1e-01 (12 of
96 entries outside atol 1e-04 + rtol 1e-04 x |expected|)"), never an expected
value or a bound computed from one; a single wrong number is called wrong
without the size of its error, which would give the answer away. That message is the only text of a
hidden test a student sees; any other failure shows the check's description
and the exception type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from autograder.rubric import Check

MAX_MESSAGES = 3


class CheckFailure(AssertionError):
    """A hidden check failed; the message is written for the student."""


def _kind(actual: Any) -> str:
    if isinstance(actual, torch.Tensor):
        return "a torch.Tensor"
    if isinstance(actual, np.ndarray):
        return "a NumPy array"
    if actual is None:
        return "None"
    name = getattr(actual, "_h_kind", None)
    if isinstance(name, str):
        return f"an object of type {name}"
    return f"a {type(actual).__name__}"


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + (",)" if t.dim() == 1 else ")")


def compare_tensors(
    actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float, what: str
) -> str | None:
    if actual.shape != expected.shape:
        return f"{what} has shape {_shape(actual)}, expected {_shape(expected)}"
    actual, expected = actual.detach().cpu(), expected.detach().cpu()
    if actual.dtype == torch.bool and expected.is_floating_point():
        return f"{what} has dtype torch.bool, expected a floating-point tensor"
    if (
        actual.dtype == torch.bool
        or expected.dtype == torch.bool
        or not expected.is_floating_point()
    ):
        if actual.is_floating_point() and not expected.is_floating_point():
            return f"{what} has dtype {actual.dtype}, expected an integer tensor"
        wrong = int((actual.to(torch.int64) != expected.to(torch.int64)).sum())
        return f"{what}: {wrong} of {expected.numel()} entries differ" if wrong else None
    if actual.is_complex() or not (
        actual.is_floating_point() or actual.dtype in (torch.int32, torch.int64)
    ):
        return f"{what} has dtype {actual.dtype}, expected a floating-point tensor"
    a, e = actual.to(torch.float64), expected.to(torch.float64)
    if not torch.isfinite(a).all():
        bad = int((~torch.isfinite(a)).sum())
        return f"{what} contains {bad} NaN or infinite values"
    if a.numel() == 0:
        return None
    error = (a - e).abs()
    if bool((error <= atol + rtol * e.abs()).all()):
        return None
    if e.numel() == 1:  # one number: its error size with the student's value is the answer
        return f"{what} is wrong (outside {tolerance(rtol, atol)})"
    wrong = int((error > atol + rtol * e.abs()).sum())
    return (
        f"{what}: max abs error {float(error.max()):.1e} ({wrong} of {e.numel()} entries outside "
        f"{tolerance(rtol, atol)})"
    )


def tolerance(rtol: float, atol: float) -> str:
    """The rubric's tolerance as settings: never a bound computed from a reference value."""
    return f"atol {atol:.0e} + rtol {rtol:.0e} x |expected|"


def compare_values(
    actual: Any, expected: Any, rtol: float, atol: float, device: str | None, what: str = "output"
) -> str | None:
    """Structural comparison of a student's value with a trusted reference; a message or None."""
    if isinstance(expected, torch.Tensor):
        if type(actual) is not torch.Tensor:
            return f"{what} is {_kind(actual)}, expected a torch.Tensor"
        if device is not None and actual.device.type != device:
            return f"{what} is on {actual.device.type}, but the inputs were on {device} (hard-coded .cpu() or .cuda()?)"
        return compare_tensors(actual, expected, rtol, atol, what)
    if isinstance(expected, np.ndarray):
        if type(actual) is not np.ndarray:
            return f"{what} is {_kind(actual)}, expected a NumPy array"
        if actual.dtype == object or not actual.dtype.isbuiltin:
            return f"{what} has dtype {actual.dtype}, expected numbers"
        return compare_tensors(
            torch.from_numpy(np.ascontiguousarray(actual)),
            torch.from_numpy(expected),
            rtol,
            atol,
            what,
        )
    if isinstance(expected, bool):
        if type(actual) is not bool:
            return f"{what} is {_kind(actual)}, expected a bool"
        return None if actual == expected else f"{what} is wrong"
    if isinstance(expected, int):
        if type(actual) is not int:
            return f"{what} is {_kind(actual)}, expected an int"
        return None if actual == expected else f"{what} is {actual}, which is wrong"
    if isinstance(expected, float):
        if type(actual) not in (int, float):
            return f"{what} is {_kind(actual)}, expected a number"
        if expected != expected:  # NaN expected (an undefined metric)
            return None if actual != actual else f"{what} should be NaN here"
        if actual != actual or abs(actual - expected) > atol + rtol * abs(expected):
            # no error size for a single number: with the student's own value it is the answer
            return f"{what} is {actual:.6g}, which is wrong (outside {tolerance(rtol, atol)})"
        return None
    if isinstance(expected, tuple | list):
        if type(actual) not in (tuple, list):
            return f"{what} is {_kind(actual)}, expected a sequence of {len(expected)}"
        if len(actual) != len(expected):
            return f"{what} has {len(actual)} items, expected {len(expected)}"
        for index, (a, e) in enumerate(zip(actual, expected)):
            failure = compare_values(a, e, rtol, atol, device, f"{what}[{index}]")
            if failure:
                return failure
        return None
    if isinstance(expected, dict):
        if type(actual) is not dict:
            return f"{what} is {_kind(actual)}, expected a dict"
        for key, e in expected.items():
            if key not in actual:
                return f"{what} has no '{key}'"
            failure = compare_values(actual[key], e, rtol, atol, device, f"{what}['{key}']")
            if failure:
                return failure
        return None
    if expected is None:
        return None if actual is None else f"{what} is {_kind(actual)}, expected None"
    raise TypeError(f"unsupported reference type {type(expected).__name__}")


def summarize(failures: list[tuple[str, str]], total: int) -> str:
    """One line per check: the failing cases with their measured errors, not repeated."""
    plural = "s" if total > 1 else ""
    if not failures:
        return f"passed ({total} case{plural})"
    distinct = {failure for _, failure in failures}
    if len(distinct) == 1 and len(failures) > 1:
        label, failure = failures[0]
        return f"{failure} ({len(failures)} of {total} cases, e.g. {label})"
    shown = "; ".join(
        f"{label}: {failure}" if label else failure for label, failure in failures[:MAX_MESSAGES]
    )
    return shown + (f" ({len(failures)} of {total} cases failed)" if total > 1 else "")


@dataclass
class CheckHelper:
    """The ``check`` fixture: this rubric check's tolerances and the grading device."""

    rubric_check: Check
    device: str | None

    @property
    def rtol(self) -> float:
        return self.rubric_check.rtol

    @property
    def atol(self) -> float:
        return self.rubric_check.atol

    def close(
        self,
        actual: Any,
        expected: Any,
        what: str = "output",
        *,
        rtol: float | None = None,
        atol: float | None = None,
    ) -> None:
        """``actual`` matches ``expected`` within the rubric's tolerances (exactly for ints)."""
        rtol = self.rtol if rtol is None else rtol
        atol = self.atol if atol is None else atol
        failure = compare_values(actual, expected, rtol, atol, self.device, what)
        if failure:
            raise CheckFailure(failure)

    def equal(self, actual: Any, expected: Any, what: str = "output") -> None:
        """Exact agreement (integers, shapes, booleans, strings)."""
        if isinstance(expected, str):
            if actual != expected:
                raise CheckFailure(f"{what} is wrong")
            return
        self.close(actual, expected, what, rtol=0.0, atol=0.0)

    def that(self, condition: bool, message: str) -> None:
        """A property of a correct output (a mode restored, weights untouched)."""
        if condition is not True:
            raise CheckFailure(message)

    def fail(self, message: str) -> None:
        raise CheckFailure(message)
