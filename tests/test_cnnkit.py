"""cnnkit.check_close: the visible checks' tolerance comparison and its message."""

from __future__ import annotations

import pytest
import torch
from conftest import load_cnnkit


def test_check_close_reports_the_error():
    cnnkit = load_cnnkit()
    cnnkit.check_close(torch.ones(2), torch.ones(2), name="same")
    try:
        cnnkit.check_close(torch.ones(2), torch.zeros(2), name="off")
    except AssertionError as exc:
        assert "max abs error 1.00e+00" in str(exc)
    else:
        raise AssertionError("check_close accepted different tensors")


def test_check_close_honours_tolerances_for_python_scalars():
    cnnkit = load_cnnkit()
    cnnkit.check_close(0.30000001192092896, 0.3, "float32 metric")
    cnnkit.check_close(3, 3, "int")
    with pytest.raises(AssertionError, match="expected 0.3"):
        cnnkit.check_close(0.303, 0.3, "1% off")
    with pytest.raises(AssertionError):
        cnnkit.check_close(4, 3, "int off by one")
