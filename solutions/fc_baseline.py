"""References for m06_01_fc_baseline, built on PyTorch's own modules (float64-safe).

The oracle is PyTorch itself: ``torch.flatten``, ``F.linear``, ``nn.Linear`` layers
in an ``nn.Sequential`` (whose state dict the student's MLP must load strictly),
``sum(p.numel())`` for parameter counts and ``torch.roll`` for shifted images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def flatten(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C*H*W) in (C, H, W) order, as ``nn.Flatten()`` does."""
    return torch.flatten(x, start_dim=1)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x (..., in), weight (out, in), bias (out,) or None -> (..., out)."""
    return F.linear(x, weight, bias)


def mlp_layers(in_features: int, hidden: list[int], num_classes: int) -> nn.Sequential:
    """Linear, ReLU, Linear, ReLU, ..., Linear: the ``layers`` of the notebook's MLP."""
    widths = [in_features, *hidden]
    modules: list[nn.Module] = []
    for width_in, width_out in zip(widths[:-1], widths[1:]):
        modules += [nn.Linear(width_in, width_out), nn.ReLU()]
    modules.append(nn.Linear(widths[-1], num_classes))
    return nn.Sequential(*modules)


class MLP(nn.Module):
    """The notebook's MLP: ``layers`` applied to the flattened image."""

    def __init__(self, in_features: int, hidden: list[int], num_classes: int) -> None:
        super().__init__()
        self.layers = mlp_layers(in_features, hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(flatten(x))


def mlp_state_dict(layers: nn.Sequential) -> dict[str, torch.Tensor]:
    """``layers``' state dict under the keys of the notebook's MLP (``layers.0.weight``, ...)."""
    return {f"layers.{key}": value for key, value in layers.state_dict().items()}


def mlp_parameter_count(
    channels: int, height: int, width: int, hidden: list[int], num_classes: int
) -> int:
    """``sum(p.numel())`` of the MLP, counted on the meta device (no memory, any size)."""
    with torch.device("meta"):
        layers = mlp_layers(channels * height * width, hidden, num_classes)
    return int(sum(p.numel() for p in layers.parameters()))


def shift_images(images: torch.Tensor, k: int) -> torch.Tensor:
    """Images shifted k pixels to the right (left for k < 0), wrapping around: torch.roll."""
    return torch.roll(images, shifts=k, dims=-1)


@torch.no_grad()
def shift_sensitivity(model: nn.Module, images: torch.Tensor, k: int) -> float:
    """The fraction of images whose predicted class (argmax of the logits) changes when the
    images are shifted k pixels along the width with wrap-around."""
    before = model(images).argmax(dim=1)
    after = model(shift_images(images, k)).argmax(dim=1)
    return float((before != after).double().mean())
