"""References for m06_10_adversarial, float64-safe, with torchattacks' conventions.

- Loss: cross-entropy on logits (mean over the batch).
- FGSM: ``clamp(x + eps * sign(grad_x loss), 0, 1)``.
- PGD (L-inf): from ``x`` (or an injected start, or a uniform random start),
  repeat ``adv + alpha * sign(grad)``, project onto the eps-ball around ``x``,
  clamp to ``[0, 1]``, detach.
- Attacks run the model in eval mode and restore its mode afterwards; they
  compute gradients with respect to the input only, never into the parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block, then restore the mode it had."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the mean cross-entropy with respect to ``x: (N, C, H, W)``; same shape."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """``x: (N, C, H, W)`` in [0, 1], ``y: (N,)`` -> ``clamp(x + eps * sign(grad), 0, 1)``."""
    with eval_mode(model):
        grad = input_gradient(model, x, y)
    return (x.detach() + eps * grad.sign()).clamp(0, 1)


def pgd_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool = False,
    init: torch.Tensor | None = None,
) -> torch.Tensor:
    """L-inf PGD. ``init`` (a point in the ball) overrides ``random_start``; returns ``(N, C, H, W)``."""
    x = x.detach()
    if init is not None:
        adv = init.detach().clone()
    elif random_start:
        adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    else:
        adv = x.clone()
    with eval_mode(model):
        for _ in range(steps):
            adv = adv + alpha * input_gradient(model, adv, y).sign()
            adv = (x + (adv - x).clamp(-eps, eps)).clamp(0, 1).detach()
    return adv


def adversarial_training_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool = False,
) -> torch.Tensor:
    """Madry et al.: cross-entropy of the model, in its own mode, on PGD examples; a scalar."""
    x_adv = pgd_attack(model, x, y, eps, alpha, steps, random_start=random_start)
    return F.cross_entropy(model(x_adv), y)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Predicted classes ``(N,)`` in eval mode (the mode is restored)."""
    with eval_mode(model):
        return model(x).argmax(dim=1)


def robust_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    batch_size: int = 256,
) -> float:
    """Accuracy on PGD examples (no random start); ``steps=0`` or ``eps=0`` gives clean accuracy."""
    correct = 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        adv = pgd_attack(model, xb, yb, eps, alpha, steps)
        correct += int((predict(model, adv) == yb).sum())
    return correct / len(x)


def transfer_rate(
    target_model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor
) -> float:
    """Of the examples ``target_model`` classifies correctly when clean, the fraction it gets
    wrong on ``x_adv``; 0.0 when it gets none right."""
    clean_correct = predict(target_model, x) == y
    fooled = predict(target_model, x_adv) != y
    total = int(clean_correct.sum())
    return int((clean_correct & fooled).sum()) / total if total else 0.0
