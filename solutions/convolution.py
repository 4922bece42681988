"""References for m06_02_convolution, built on PyTorch's own operators (float64-safe).

The student implementations are compared with these; each one follows
PyTorch's conventions exactly, so the oracle is ``torch.nn.functional``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Pair = int | tuple[int, int]
Padding = int | tuple[int, int] | str


def pair(value: Pair) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def conv_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """floor((size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1."""
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: Pair = 1,
    padding: Padding = 0,
    dilation: Pair = 1,
    groups: int = 1,
) -> torch.Tensor:
    """Cross-correlation with PyTorch's conventions; 'same' pads the extra row/column bottom/right."""
    if padding == "same" and pair(stride) != (1, 1):
        raise ValueError("padding='same' needs stride 1")
    padding = 0 if padding == "valid" else padding
    return F.conv2d(
        x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups
    )


def max_pool2d(
    x: torch.Tensor, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0
) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size, stride=stride, padding=padding)


def avg_pool2d(
    x: torch.Tensor, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0
) -> torch.Tensor:
    """Average pooling; zero padding counts in the average (PyTorch's count_include_pad=True)."""
    return F.avg_pool2d(x, kernel_size, stride=stride, padding=padding, count_include_pad=True)


def global_avg_pool2d(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C)."""
    return F.adaptive_avg_pool2d(x, 1).flatten(1)
