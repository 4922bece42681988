"""References for c12_augmentation: MixUp, CutMix, Cutout and a soft-label cross-entropy.

- MixUp and CutMix run torchvision's own ``transforms.v2.MixUp`` / ``CutMix`` with the
  random draw injected (``make_params`` returns the given lambda, or the box the stated rule
  gives for the given centre), so the pasting and the label mixing are torchvision's code
  and the grading does not depend on v2's random-number order. Partners: ``roll(1)`` on the
  batch, as v2 does (item i mixes with item i - 1); with a given permutation, item i mixes
  with ``x[perm[i]]`` (written out: v2 has no permutation argument).
- The CutMix box is v2's rule: half sides ``int(0.5 * sqrt(1 - lam) * W)`` and ``... * H``
  around the centre, clipped to the image; the label weight is recomputed from the clipped
  area. tests/test_solutions_augmentation.py checks the rule against v2's ``make_params``.
- Cutout (DeVries and Taylor 2017, their reference code): a square of ``size`` around the
  centre, ``y - size // 2`` to ``y + size // 2`` clipped to the image, set to ``fill``.
- The loss is ``F.cross_entropy(logits, targets, label_smoothing=eps)``, which takes class
  indices or class probabilities.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2

# --------------------------------------------------------------------------- MixUp


class _FixedMixUp(v2.MixUp):
    def __init__(self, lam: float, num_classes: int) -> None:
        super().__init__(num_classes=num_classes)
        self.lam = lam

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"lam": float(self.lam)}


class _FixedCutMix(v2.CutMix):
    def __init__(self, box: tuple[int, int, int, int], num_classes: int) -> None:
        super().__init__(num_classes=num_classes)
        self.box = box

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        x1, y1, x2, y2 = self.box
        height, width = flat_inputs[0].shape[-2:]
        return {"box": self.box, "lam_adjusted": 1.0 - (x2 - x1) * (y2 - y1) / (width * height)}


def mixup(
    images: torch.Tensor,
    labels: torch.Tensor,
    lam: float,
    num_classes: int,
    perm: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """lam * x + (1 - lam) * partner, for images and one-hot labels."""
    if perm is None:
        images, targets = _FixedMixUp(lam, num_classes)(tv_tensors.Image(images), labels)
        return images.as_subclass(torch.Tensor), targets
    one_hot = F.one_hot(labels, num_classes).to(images.dtype)
    return lam * images + (1 - lam) * images[perm], lam * one_hot + (1 - lam) * one_hot[perm]


# --------------------------------------------------------------------------- CutMix


def cutmix_box(
    lam: float, height: int, width: int, center_x: int, center_y: int
) -> tuple[int, int, int, int]:
    """v2's box: (x1, y1, x2, y2), half sides int(0.5 sqrt(1 - lam) W) and ... H, clipped."""
    r = 0.5 * math.sqrt(1.0 - lam)
    half_w, half_h = int(r * width), int(r * height)
    x1, y1 = max(center_x - half_w, 0), max(center_y - half_h, 0)
    x2, y2 = min(center_x + half_w, width), min(center_y + half_h, height)
    return x1, y1, x2, y2


def cutmix(
    images: torch.Tensor,
    labels: torch.Tensor,
    lam: float,
    center_x: int,
    center_y: int,
    num_classes: int,
    perm: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The partner's box pasted in; labels weighted by the box's clipped area."""
    height, width = images.shape[-2:]
    box = cutmix_box(lam, height, width, center_x, center_y)
    if perm is None:
        mixed, targets = _FixedCutMix(box, num_classes)(tv_tensors.Image(images), labels)
        return mixed.as_subclass(torch.Tensor), targets
    x1, y1, x2, y2 = box
    mixed = images.clone()
    mixed[..., y1:y2, x1:x2] = images[perm][..., y1:y2, x1:x2]
    kept = 1.0 - (x2 - x1) * (y2 - y1) / (width * height)
    one_hot = F.one_hot(labels, num_classes).to(images.dtype)
    return mixed, kept * one_hot + (1 - kept) * one_hot[perm]


# --------------------------------------------------------------------------- Cutout


def cutout(
    images: torch.Tensor, centers: torch.Tensor, size: int, fill: float = 0.0
) -> torch.Tensor:
    """DeVries and Taylor's Cutout: per image, rows y - size // 2 to y + size // 2 and the
    same columns around its centre (x, y), clipped, set to ``fill``."""
    height, width = images.shape[-2:]
    out = images.clone()
    for i, (x, y) in enumerate(centers.tolist()):
        y1, y2 = min(max(y - size // 2, 0), height), min(max(y + size // 2, 0), height)
        x1, x2 = min(max(x - size // 2, 0), width), min(max(x + size // 2, 0), width)
        out[i, ..., y1:y2, x1:x2] = fill
    return out


# --------------------------------------------------------------------------- the loss


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy against class indices (N,) or probabilities (N, K)."""
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
