"""The trusted judge: compares raw outputs with references and scores the rubric.

Runs in the grading process, never in the sandbox. Messages name the property
that failed and the measured error; they never contain expected values or the
hidden suite's code.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from autograder.rubric import Check, Part, Rubric
from autograder.staticcheck import Finding
from autograder.suite import NDARRAY_TAG, Case

TENSOR_TAG = "__tensor__"
OPAQUE_TAG = "__type__"
MAX_MESSAGES = 3


@dataclass
class CheckOutcome:
    check: Check
    passed: bool
    message: str

    @property
    def score(self) -> float:
        return self.check.points if self.passed else 0.0


def _kind(actual: Any) -> str:
    if isinstance(actual, dict):
        if TENSOR_TAG in actual:
            return "a torch.Tensor"
        if NDARRAY_TAG in actual:
            return "a NumPy array"
        if OPAQUE_TAG in actual:
            return f"an object of type {actual[OPAQUE_TAG]}"
        return "a dict"
    return f"a {type(actual).__name__}" if actual is not None else "None"


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + (",)" if t.dim() == 1 else ")")


def compare_tensors(
    actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float, what: str
) -> str | None:
    if actual.shape != expected.shape:
        return f"{what} has shape {_shape(actual)}, expected {_shape(expected)}"
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
    allowed = atol + rtol * e.abs()
    if bool((error <= allowed).all()):
        return None
    worst = int(torch.argmax(error - allowed))
    return f"{what}: max abs error {float(error.max()):.1e}, allowed {float(allowed.flatten()[worst]):.1e}"


def compare_values(
    actual: Any, expected: Any, rtol: float, atol: float, device: str, what: str = "output"
) -> str | None:
    """Structural comparison of a decoded probe output with a trusted reference."""
    if isinstance(actual, str) and not isinstance(expected, str):
        return f"{what}: {actual}"  # a probe's own explanation, e.g. for missing gradients
    if isinstance(expected, torch.Tensor):
        if not (
            isinstance(actual, dict)
            and TENSOR_TAG in actual
            and isinstance(actual[TENSOR_TAG], torch.Tensor)
        ):
            return f"{what} is {_kind(actual)}, expected a torch.Tensor"
        if type(actual[TENSOR_TAG]) is not torch.Tensor:
            return f"{what} is not a plain tensor"
        if actual.get("device") != device:
            return f"{what} is on {actual.get('device')}, but the inputs were on {device} (hard-coded .cpu() or .cuda()?)"
        return compare_tensors(actual[TENSOR_TAG], expected, rtol, atol, what)
    if isinstance(expected, np.ndarray):
        if not (
            isinstance(actual, dict)
            and NDARRAY_TAG in actual
            and isinstance(actual[NDARRAY_TAG], torch.Tensor)
        ):
            return f"{what} is {_kind(actual)}, expected a NumPy array"
        return compare_tensors(actual[NDARRAY_TAG], torch.from_numpy(expected), rtol, atol, what)
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
        if actual != actual or abs(actual - expected) > atol + rtol * abs(expected):
            return f"{what}: error {abs(actual - expected):.1e}, allowed {atol + rtol * abs(expected):.1e}"
        return None
    if isinstance(expected, tuple | list):
        if not isinstance(actual, tuple | list):
            return f"{what} is {_kind(actual)}, expected a sequence of {len(expected)}"
        if len(actual) != len(expected):
            return f"{what} has {len(actual)} items, expected {len(expected)}"
        for index, (a, e) in enumerate(zip(actual, expected)):
            failure = compare_values(a, e, rtol, atol, device, f"{what}[{index}]")
            if failure:
                return failure
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or TENSOR_TAG in actual or NDARRAY_TAG in actual:
            return f"{what} is {_kind(actual)}, expected a dict"
        for key, e in expected.items():
            if key not in actual:
                return f"{what} has no '{key}'"
            name = (
                {"value": "output", "grads": "gradient"}.get(key, key)
                if what == "output"
                else f"{what}.{key}"
            )
            failure = compare_values(actual[key], e, rtol, atol, device, name)
            if failure:
                return failure
        return None
    if expected is None:
        return None if actual is None else f"{what} is {_kind(actual)}, expected None"
    raise TypeError(
        f"the suite produced an expected value of unsupported type {type(expected).__name__}"
    )


def compare_structure(actual: dict, expected: dict, rtol: float, atol: float) -> str | None:
    """Comparator for ``module`` probes: ``expected`` holds some of ``shape`` (of the
    output), ``parameter_count`` and ``parameter_shapes``; output values are not compared."""
    for key, wanted in expected.items():
        what = key.replace("_", " ")
        if key == "shape":
            value = actual.get("value")
            if not (isinstance(value, dict) and TENSOR_TAG in value):
                return "the output is not a tensor"
            shape = tuple(value[TENSOR_TAG].shape)
            failure = (
                None
                if shape == tuple(wanted)
                else f"output has shape {shape}, expected {tuple(wanted)}"
            )
        elif key not in actual:
            failure = f"no {what} (did the module build?)"
        else:
            failure = compare_values(actual[key], wanted, rtol, atol, "cpu", what)
        if failure:
            return failure
    return None


def forbidden_ops_used(ops: list[str] | None, patterns: tuple[str, ...]) -> list[str]:
    if not ops or not patterns:
        return []
    if "*" in patterns:
        return sorted(ops)
    return sorted({op for op in ops if any(fnmatch.fnmatchcase(op, p) for p in patterns)})


def judge_case(
    case: Case, payload: dict | None, check: Check, part: Part, device: str
) -> tuple[str | None, list[str]]:
    """(failure message or None, forbidden ops seen) for one case."""
    if payload is None:
        return "not run", []
    if not payload.get("ok"):
        return str(payload.get("error", "failed")), []
    ops = forbidden_ops_used(payload.get("ops"), part.forbidden.ops if part.forbidden else ())
    actual = {key: value for key, value in payload.items() if key not in ("ok", "seconds", "ops")}
    expected = (
        case.expected
        if isinstance(case.expected, dict) and "value" in case.expected
        else {"value": case.expected}
    )
    try:
        if case.compare is not None:
            failure = case.compare(actual, case.expected, check.rtol, check.atol)
        else:
            failure = compare_values(actual, expected, check.rtol, check.atol, device)
    except Exception as exc:  # a malformed output must never crash the batch
        failure = f"the output could not be compared ({type(exc).__name__})"
    return failure, ops


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


def judge(
    rubric: Rubric,
    cases: dict[str, list[Case]],
    results: dict[int, dict],
    first_index: dict[str, int],
    cell_errors: dict[str, str],
    missing_cells: dict[str, str],
    findings: dict[str, list[Finding]],
    device: str,
) -> list[CheckOutcome]:
    outcomes = []
    for part in rubric.parts:
        static = findings.get(part.id, [])
        runtime_ops: set[str] = set()
        part_outcomes = []
        for check in part.checks:
            failures: list[tuple[str, str]] = []
            for offset, case in enumerate(cases[check.id]):
                failure, ops = judge_case(
                    case, results.get(first_index[check.id] + offset), check, part, device
                )
                runtime_ops.update(ops)
                if failure:
                    failures.append((case.label, failure))
            message = summarize(failures, len(cases[check.id]))
            part_outcomes.append(CheckOutcome(check, not failures, message))
        reason = None
        if part.answer_cell in missing_cells:
            reason = missing_cells[part.answer_cell]
        elif part.answer_cell in cell_errors:
            reason = f"cell '{part.answer_cell}' failed: {cell_errors[part.answer_cell]}"
        violation = None
        if static:
            violation = "; ".join(f.describe() for f in static[:2])
        elif runtime_ops:
            violation = f"called {', '.join(sorted(runtime_ops)[:4])} (ATen), which this from-scratch task forbids"
        for outcome in part_outcomes:
            if violation:
                outcome.passed = False
                outcome.message = f"from-scratch rule: {violation}"
            elif reason and not outcome.passed:
                outcome.message = f"{reason} — {outcome.message}"
        outcomes.extend(part_outcomes)
    return outcomes
