"""Does the judge compare like assert_close, and say what failed without revealing references?"""

from __future__ import annotations

import numpy as np
import torch

from autograder.judge import compare_values, forbidden_ops_used, summarize


def tensor(t, device="cpu"):
    return {"__tensor__": t, "device": device}


def test_equal_tensors_pass_and_small_errors_within_tolerance_pass():
    e = torch.randn(3, 4, dtype=torch.float64)
    assert compare_values(tensor(e.float()), e, 1e-4, 1e-4, "cpu") is None


def test_value_error_reports_measured_error_not_expected_values():
    e = torch.full((2, 2), 0.123456, dtype=torch.float64)
    message = compare_values(tensor(torch.zeros(2, 2)), e, 1e-4, 1e-4, "cpu")
    assert "max abs error 1.2e-01" in message
    assert "0.123" not in message and "1.23" not in message.replace("1.2e-01", "")


def test_shape_type_device_and_nan_failures_are_named():
    e = torch.zeros(2, 3, dtype=torch.float64)
    assert "shape (3, 2), expected (2, 3)" in compare_values(
        tensor(torch.zeros(3, 2)), e, 1e-4, 1e-4, "cpu"
    )
    assert "expected a torch.Tensor" in compare_values(
        {"__ndarray__": torch.zeros(2, 3)}, e, 1e-4, 1e-4, "cpu"
    )
    assert "expected a torch.Tensor" in compare_values(3.0, e, 1e-4, 1e-4, "cpu")
    assert "on cpu, but the inputs were on cuda" in compare_values(
        tensor(torch.zeros(2, 3)), e, 1e-4, 1e-4, "cuda"
    )
    nan = torch.zeros(2, 3)
    nan[0, 0] = float("nan")
    assert "NaN" in compare_values(tensor(nan), e, 1e-4, 1e-4, "cpu")
    assert "type" in compare_values({"__type__": "Liar"}, e, 1e-4, 1e-4, "cpu")


def test_numpy_expected_needs_numpy_output():
    e = np.zeros((2, 2))
    assert (
        compare_values(
            {"__ndarray__": torch.zeros(2, 2, dtype=torch.float64)}, e, 1e-5, 1e-5, "cpu"
        )
        is None
    )
    assert "expected a NumPy array" in compare_values(
        tensor(torch.zeros(2, 2)), e, 1e-5, 1e-5, "cpu"
    )


def test_numbers_and_structures():
    assert compare_values(7, 7, 0, 0, "cpu") is None
    assert "expected an int" in compare_values(7.0, 7, 0, 0, "cpu")
    assert "expected an int" in compare_values(True, 1, 0, 0, "cpu")
    assert compare_values(True, True, 0, 0, "cpu") is None
    grads = {
        "value": torch.ones(2, dtype=torch.float64),
        "grads": [torch.ones(2, dtype=torch.float64)],
    }
    ok = {"value": tensor(torch.ones(2)), "grads": [tensor(torch.ones(2))]}
    assert compare_values(ok, grads, 1e-4, 1e-4, "cpu") is None
    bad = {"value": tensor(torch.ones(2)), "grads": [tensor(torch.zeros(2))]}
    assert compare_values(bad, grads, 1e-4, 1e-4, "cpu").startswith("gradient[0]")
    missing = {
        "value": tensor(torch.ones(2)),
        "grads": "the output does not depend on the inputs through autograd",
    }
    assert "autograd" in compare_values(missing, grads, 1e-4, 1e-4, "cpu")


def test_forbidden_op_patterns():
    assert forbidden_ops_used(["add", "convolution", "mul"], ("*conv*",)) == ["convolution"]
    assert forbidden_ops_used(["add"], ("*",)) == ["add"]
    assert forbidden_ops_used(None, ("*conv*",)) == []


def test_summary_groups_identical_failures():
    same = [(f"case {i}", "NotImplementedError") for i in range(5)]
    assert summarize(same, 5) == "NotImplementedError (5 of 5 cases, e.g. case 0)"
    mixed = [("a", "x"), ("b", "y")]
    assert summarize(mixed, 4) == "a: x; b: y (2 of 4 cases failed)"
    assert summarize([], 3) == "passed (3 cases)"
