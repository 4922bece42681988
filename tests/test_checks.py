"""The comparisons behind every check: types and dtypes are part of a correct answer."""

from __future__ import annotations

import torch

from autograder.checks import compare_tensors, compare_values


def test_a_bool_tensor_never_matches_a_floating_reference():
    expected = torch.full((3, 4), 0.4, dtype=torch.float64)  # every value truncates to 0
    failure = compare_tensors(torch.zeros(3, 4, dtype=torch.bool), expected, 1e-4, 1e-4, "out")
    assert failure and "torch.bool" in failure


def test_float32_rounding_passes_and_one_percent_fails():
    expected = torch.linspace(-2, 2, 50, dtype=torch.float64)
    assert compare_tensors((expected * (1 + 1e-6)).float(), expected, 1e-4, 1e-4, "out") is None
    assert compare_tensors(expected * 1.01, expected, 1e-4, 1e-4, "out")


def test_an_int_valued_float_is_not_an_int():
    assert compare_values(32.0, 32, 0.0, 0.0, None, "channels")
    assert compare_values(32, 32, 0.0, 0.0, None, "channels") is None
