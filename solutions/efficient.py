"""References for m06_06_efficient: torchvision's own blocks, PyTorch's counters, closed forms.

- Depthwise separable convolution: ``F.conv2d(groups=C)`` then a 1x1 ``F.conv2d``.
- MobileNetV1 block: two torchvision ``Conv2dNormActivation`` layers (depthwise 3x3 with
  BatchNorm and ReLU, pointwise 1x1 with BatchNorm and ReLU), as ``depthwise`` and ``pointwise``.
- MobileNetV2 inverted residual: torchvision's ``InvertedResidual``.
- Squeeze-and-excitation: ``torchvision.ops.SqueezeExcitation``.
- CBAM (Woo et al. 2018): written out below with functional calls, channel attention
  (a shared 1x1-conv MLP on average- and max-pooled features, summed, sigmoid) then spatial
  attention (a k x k convolution over the channel mean and max, in that order, sigmoid).
- Compound scaling: torchvision's ``_make_divisible`` and ``_MBConvConfig.adjust_channels`` /
  ``adjust_depth`` for the rounding; alpha ** phi, beta ** phi, gamma ** phi for the
  multipliers.
- Counting: ``sum(p.numel())`` and ``torch.utils.flop_counter.FlopCounterMode``, which counts
  two FLOPs per multiply-accumulate; the graded number is MACs = FLOPs / 2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models._utils import _make_divisible
from torchvision.models.efficientnet import _MBConvConfig
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation

# --------------------------------------------------------------------------- convolutions


def depthwise_separable_conv(
    x: torch.Tensor,
    depthwise_weight: torch.Tensor,
    pointwise_weight: torch.Tensor,
    depthwise_bias: torch.Tensor | None = None,
    pointwise_bias: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
) -> torch.Tensor:
    """A depthwise k x k convolution (one filter per channel) and a 1x1 pointwise one."""
    channels = x.shape[1]
    y = F.conv2d(
        x, depthwise_weight, depthwise_bias, stride=stride, padding=padding, groups=channels
    )
    return F.conv2d(y, pointwise_weight, pointwise_bias)


class MobileNetV1Block(nn.Module):
    """Depthwise 3x3 (stride, BatchNorm, ReLU), then pointwise 1x1 (BatchNorm, ReLU)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = Conv2dNormActivation(
            in_channels, in_channels, 3, stride=stride, groups=in_channels
        )
        self.pointwise = Conv2dNormActivation(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def inverted_residual(
    in_channels: int, out_channels: int, stride: int, expand_ratio: float
) -> nn.Module:
    """torchvision's MobileNetV2 block (hidden width round(in * expand_ratio))."""
    return InvertedResidual(in_channels, out_channels, stride, expand_ratio)


def squeeze_excitation(channels: int, squeeze_channels: int) -> nn.Module:
    """torchvision's SE block: avg pool, 1x1 conv, ReLU, 1x1 conv, sigmoid, times the input."""
    return SqueezeExcitation(channels, squeeze_channels)


def cbam_hidden(channels: int, reduction: int) -> int:
    return max(channels // reduction, 1)


class CBAM(nn.Module):
    """The state-dict layout the notebook states: ``mlp`` (1x1 conv, ReLU, 1x1 conv, no
    biases) and ``spatial`` (k x k conv from 2 channels to 1, padding k // 2, no bias)."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        hidden = cbam_hidden(channels, reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cbam(x, self.mlp[0].weight, self.mlp[2].weight, self.spatial.weight)


def cbam(
    x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, spatial_weight: torch.Tensor
) -> torch.Tensor:
    """CBAM in functional form: channel attention, then spatial attention on its output."""

    def mlp(v: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.relu(F.conv2d(v, w1)), w2)

    avg = x.mean(dim=(2, 3), keepdim=True)
    peak = x.amax(dim=(2, 3), keepdim=True)
    x = x * torch.sigmoid(mlp(avg) + mlp(peak))
    maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
    padding = spatial_weight.shape[-1] // 2
    return x * torch.sigmoid(F.conv2d(maps, spatial_weight, padding=padding))


# --------------------------------------------------------------------------- scaling


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision's (and TensorFlow's) rounding of a channel count to a multiple of divisor."""
    return int(_make_divisible(value, divisor, min_value))


def compound_scaling(
    phi: float,
    stages: list[tuple[int, int]],
    alpha: float = 1.2,
    beta: float = 1.1,
    gamma: float = 1.15,
    base_resolution: int = 224,
) -> dict:
    """EfficientNet's compound scaling of a baseline with (channels, layers) per stage."""
    depth, width = alpha**phi, beta**phi
    return {
        "depth": depth,
        "width": width,
        "resolution": int(round(base_resolution * gamma**phi)),
        "stages": [
            (
                _MBConvConfig.adjust_channels(channels, width),
                int(math.ceil(layers * depth)),
            )
            for channels, layers in stages
        ],
    }


# EfficientNet-B0's stages (output channels, layers), torchvision's baseline.
B0_STAGES = [(16, 1), (24, 2), (40, 2), (80, 3), (112, 3), (192, 4), (320, 1)]


# --------------------------------------------------------------------------- counting


def parameter_count(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def mac_count(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass on zeros of ``input_shape`` (FLOPs / 2)."""
    parameter = next(model.parameters())
    x = torch.zeros(input_shape, dtype=parameter.dtype, device=parameter.device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops()) // 2


def conv_macs(c_in: int, c_out: int, k: int, h_out: int, w_out: int, groups: int = 1) -> int:
    """Closed form: every output value is a sum over (c_in / groups) * k * k products."""
    return c_out * h_out * w_out * (c_in // groups) * k * k
