"""Do the m06_02 references follow PyTorch's conventions (the oracle is torch itself)?"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from solutions import convolution as ref


def test_output_size_formula_matches_real_convolutions():
    for n, k, s, p, d in itertools.product([5, 8, 13], [1, 2, 3], [1, 2, 3], [0, 1, 2], [1, 2]):
        if n + 2 * p < d * (k - 1) + 1:
            continue
        actual = F.conv2d(
            torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=s, padding=p, dilation=d
        ).shape[-1]
        assert ref.conv_output_size(n, k, s, p, d) == actual


def test_same_padding_puts_the_extra_row_bottom_right():
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    x[0, 0, 0, 0] = 1.0  # top-left pixel
    w = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    w[0, 0, 0, 0] = 1.0  # tap (0, 0) reads the pixel itself when there is no top/left padding
    assert ref.conv2d(x, w, padding="same")[0, 0, 0, 0] == 1.0


def test_same_padding_needs_stride_one():
    with pytest.raises(ValueError):
        ref.conv2d(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 3, 3), padding="same", stride=2)


def test_pooling_conventions():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert ref.avg_pool2d(x, 2, padding=1)[0, 0, 0, 0] == 0.0 / 4  # the zero padding counts
    assert ref.max_pool2d(-x - 1, 2, padding=1)[0, 0, 0, 0] == -1.0  # padding never wins
    assert ref.global_avg_pool2d(x).shape == (1, 1) and ref.global_avg_pool2d(x)[0, 0] == 7.5
