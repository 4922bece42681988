"""References for m06_08_style_transfer (Gatys et al.), float64-safe.

Conventions follow PyTorch's neural style transfer tutorial:

- Gram matrix of features ``(a, b, c, d)`` = (batch, channels, height, width):
  ``F = features.reshape(a * b, c * d)``, ``G = F @ F.T / (a * b * c * d)``.
- Content and style losses are mean squared errors (``F.mse_loss``).
- Total variation: the mean squared difference of vertical neighbours plus the
  mean squared difference of horizontal neighbours.
- One optimisation step is plain gradient descent on the pixels, clamped to
  ``[0, 1]``: ``clamp(image - lr * dL/dimage, 0, 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``features: (a, b, c, d)`` -> ``(a * b, a * b)``, divided by ``a * b * c * d``."""
    a, b, c, d = features.shape
    flat = features.reshape(a * b, c * d)  # one row per (image, channel)
    return flat @ flat.T / (a * b * c * d)


def content_loss(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between two feature maps of the same shape; a scalar."""
    return F.mse_loss(generated, target)


def style_loss(
    features: Sequence[torch.Tensor], target_grams: Sequence[torch.Tensor], weights: Sequence[float]
) -> torch.Tensor:
    """``sum_l weights[l] * mse(gram_matrix(features[l]), target_grams[l])``; a scalar."""
    if not (len(features) == len(target_grams) == len(weights)):
        raise ValueError("features, target_grams and weights must have the same length")
    terms = [w * F.mse_loss(gram_matrix(f), g) for f, g, w in zip(features, target_grams, weights)]
    return torch.stack(terms).sum()


def total_variation_loss(image: torch.Tensor) -> torch.Tensor:
    """``image: (N, C, H, W)``: mean((x[i+1, j] - x[i, j])^2) + mean((x[i, j+1] - x[i, j])^2)."""
    vertical = image[:, :, 1:, :] - image[:, :, :-1, :]  # (N, C, H-1, W)
    horizontal = image[:, :, :, 1:] - image[:, :, :, :-1]  # (N, C, H, W-1)
    return vertical.pow(2).mean() + horizontal.pow(2).mean()


def extract_features(
    model: nn.Sequential, x: torch.Tensor, layers: Sequence[int]
) -> list[torch.Tensor]:
    """Outputs of ``model[i]`` for each ``i`` in ``layers`` (in that order), copied so that a
    later in-place layer cannot overwrite them."""
    wanted = set(layers)
    found = {}
    for index, layer in enumerate(model):
        x = layer(x)
        if index in wanted:
            found[index] = x.clone()
        if len(found) == len(wanted):
            break
    return [found[i] for i in layers]


def style_transfer_loss(
    model: nn.Sequential,
    image: torch.Tensor,
    content_target: torch.Tensor,
    style_grams: Sequence[torch.Tensor],
    content_layer: int,
    style_layers: Sequence[int],
    style_weights: Sequence[float],
    content_weight: float = 1.0,
    style_weight: float = 1e6,
    tv_weight: float = 0.0,
) -> torch.Tensor:
    """content_weight * content + style_weight * style + tv_weight * total variation."""
    features = extract_features(model, image, [content_layer, *style_layers])
    return (
        content_weight * content_loss(features[0], content_target)
        + style_weight * style_loss(features[1:], style_grams, style_weights)
        + tv_weight * total_variation_loss(image)
    )


def style_transfer_step(
    model: nn.Sequential, image: torch.Tensor, lr: float, **loss_kwargs
) -> torch.Tensor:
    """``clamp(image - lr * grad, 0, 1)`` with the gradient of :func:`style_transfer_loss`."""
    image = image.detach().requires_grad_(True)
    loss = style_transfer_loss(model, image, **loss_kwargs)
    (grad,) = torch.autograd.grad(loss, image)
    return (image - lr * grad).clamp(0, 1).detach()
