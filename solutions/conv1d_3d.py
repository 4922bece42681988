"""References for m06_09_conv1d_3d: 1-d and 3-d convolutions, temporal convolutional networks.

- Causal convolution, as the TCN paper's code does it (Bai, Kolter and Koltun 2018,
  locuslab/TCN): ``F.conv1d`` with padding d(k - 1) on *both* sides, then the last d(k - 1)
  outputs chomped off (``Chomp1d``). The notebook teaches the other formulation, left
  padding only, so the reference is not the solution written twice.
- ``TemporalBlock`` and ``TemporalConvNet``: locuslab's modules without ``weight_norm``
  (the notebook states the plain layout): two causal dilated convolutions with ReLU and
  dropout, a 1x1 ``downsample`` when the width changes, ``relu(out + res)``; dilations
  2 ** i. The sequence model reads the last time step.
- Receptive fields: the closed form 1 + sum_l d_l (k_l - 1), cross-checked in
  tests/test_solutions_conv1d_3d.py against the gradient support of a convolution stack.
- The GRU baseline: ``nn.GRU(batch_first=True)``, the top layer's last hidden state
  ``h_n[-1]`` into a linear head (the notebook reads ``output[:, -1]``, the same numbers).
- The video classifier: the layout stated in the notebook, with functional calls in the
  forward pass; ``frames_to_clips`` as one permute and a division by 255.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- causal convolution


def causal_conv1d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, dilation: int = 1
) -> torch.Tensor:
    """y_t = b + sum_j w_j x_{t - d (k - 1 - j)}: both sides padded, the future chomped."""
    chomp = dilation * (weight.shape[-1] - 1)
    y = F.conv1d(x, weight, bias, padding=chomp, dilation=dilation)
    return y[..., : y.shape[-1] - chomp].contiguous() if chomp else y


class Chomp1d(nn.Module):
    """locuslab's Chomp1d: drop the last ``chomp_size`` time steps."""

    def __init__(self, chomp_size: int) -> None:
        super().__init__()
        self.chomp_size = chomp_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : -self.chomp_size].contiguous() if self.chomp_size else x


class TemporalBlock(nn.Module):
    """locuslab's TemporalBlock without weight_norm: parameters ``conv1``, ``conv2`` and,
    when the width changes, ``downsample`` (registered in that order)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dilation: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        padding = (kernel_size - 1) * dilation
        self.conv1 = nn.Conv1d(
            in_channels, out_channels, kernel_size, padding=padding, dilation=dilation
        )
        self.conv2 = nn.Conv1d(
            out_channels, out_channels, kernel_size, padding=padding, dilation=dilation
        )
        self.chomp = Chomp1d(padding)
        self.dropout = nn.Dropout(dropout)
        self.downsample = (
            nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(F.relu(self.chomp(self.conv1(x))))
        out = self.dropout(F.relu(self.chomp(self.conv2(out))))
        res = x if self.downsample is None else self.downsample(x)
        return F.relu(out + res)


class TCN(nn.Module):
    """``blocks``: TemporalBlocks with dilation 2 ** i; ``head``: a linear layer on the last
    time step of the last block."""

    def __init__(
        self,
        input_size: int,
        output_size: int,
        channels: list[int],
        kernel_size: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        widths = [input_size, *channels]
        self.blocks = nn.Sequential(
            *(
                TemporalBlock(widths[i], widths[i + 1], kernel_size, 2**i, dropout)
                for i in range(len(channels))
            )
        )
        self.head = nn.Linear(channels[-1], output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x)[:, :, -1])


# --------------------------------------------------------------------------- receptive fields


def receptive_field(kernel_sizes: list[int], dilations: list[int]) -> int:
    """Stride-1 stack: 1 + sum_l d_l (k_l - 1)."""
    return 1 + sum(d * (k - 1) for k, d in zip(kernel_sizes, dilations, strict=True))


def tcn_receptive_field(kernel_size: int, levels: int) -> int:
    """``levels`` TemporalBlocks, two convolutions each, dilations 1, 2, ..., 2 ** (levels - 1):
    1 + 2 (k - 1) (2 ** levels - 1)."""
    return 1 + 2 * (kernel_size - 1) * (2**levels - 1)


def levels_for(kernel_size: int, length: int) -> int:
    """The fewest levels whose receptive field covers ``length`` time steps (at least 1)."""
    if kernel_size < 2:
        raise ValueError("a kernel of size 1 never widens the receptive field")
    levels = 1
    while tcn_receptive_field(kernel_size, levels) < length:
        levels += 1
    return levels


# --------------------------------------------------------------------------- video


def frames_to_clips(frames: torch.Tensor) -> torch.Tensor:
    """(N, T, H, W, C) uint8 frames -> (N, C, T, H, W) float32 in [0, 1]."""
    return frames.permute(0, 4, 1, 2, 3).to(torch.float32) / 255.0


class VideoClassifier(nn.Module):
    """The notebook's layout: ``features`` (conv3d-BN-ReLU, MaxPool3d((1, 2, 2)),
    conv3d-BN-ReLU, AdaptiveAvgPool3d(1)) and ``classifier`` (Linear)."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 2, 2)),
            nn.Conv3d(width, 2 * width, 3, padding=1, bias=False),
            nn.BatchNorm3d(2 * width),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool3d(1),
        )
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv1, bn1, _, _, conv2, bn2, _, _ = self.features
        y = F.relu(bn1(F.conv3d(x, conv1.weight, padding=1)))
        y = F.max_pool3d(y, (1, 2, 2))
        y = F.relu(bn2(F.conv3d(y, conv2.weight, padding=1)))
        return F.linear(y.mean(dim=(2, 3, 4)), self.classifier.weight, self.classifier.bias)


# --------------------------------------------------------------------------- the RNN baseline


class GRUBaseline(nn.Module):
    """``gru``: nn.GRU(input_size, hidden_size, num_layers, batch_first=True); ``head``:
    Linear(hidden_size, output_size) on the top layer's last hidden state. Input (N, C, T)."""

    def __init__(
        self, input_size: int, hidden_size: int, output_size: int, num_layers: int = 1
    ) -> None:
        super().__init__()
        self.gru = nn.GRU(input_size, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h_n = self.gru(x.transpose(1, 2))
        return self.head(h_n[-1])


def future_gradient(output: torch.Tensor, x: torch.Tensor, t: int) -> torch.Tensor:
    """d output[..., t].sum() / d x[..., t + 1:]: exactly zero for a causal map."""
    (grad,) = torch.autograd.grad(output[..., t].sum(), x, retain_graph=True)
    return grad[..., t + 1 :]
