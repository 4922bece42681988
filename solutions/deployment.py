"""References for c12_deployment: affine INT8 quantisation, an integer matmul, pruning masks,
the distillation loss, all in float64 (integers exact).

Conventions (those of PyTorch's ``MinMaxObserver`` and ``torch.nn.utils.prune``;
tests/test_solutions_deployment.py checks each against the library):

- ``qmin, qmax`` = (-128, 127) for ``torch.int8`` and (0, 255) for ``torch.uint8``.
- The range is extended to include 0: ``lo = min(x.min(), 0)``, ``hi = max(x.max(), 0)``,
  per tensor or per slice along ``axis`` (the output channel of a weight).
- ``scale = (hi - lo) / (qmax - qmin)``, floored at ``EPS`` (float32's machine epsilon), so
  an all-zero tensor gets ``scale = EPS``.
- ``zero_point = clamp(qmin - round(lo / scale), qmin, qmax)`` with ``torch.round``
  (half to even), an integer.
- ``quantize``: ``clamp(round(x / scale) + zero_point, qmin, qmax)`` (half to even);
  ``dequantize``: ``(q - zero_point) * scale``. ``fake_quantize_per_*_affine`` computes
  ``x * (1 / scale)`` instead of ``x / scale``; the two differ only next to a tie.
- The integer matmul: ``acc[m, n] = sum_k (qa[m, k] - za) * (qb[k, n] - zb)`` (int32) and
  the output ``sa * sb * acc``; ``zb`` and ``sb`` may be per column of ``qb`` (its output
  channels), shape ``(N,)``.
- Pruning: a float ``amount`` prunes ``round(amount * n)`` (Python's round, half to even)
  of ``n`` weights or channels, an int ``amount`` that many; ``l1_unstructured`` removes the
  smallest ``|w|``, ``ln_structured`` the slices along ``dim`` of smallest Ln norm (over all
  other dimensions). Both return ``(weight * mask, mask)``, the mask in the weight's dtype.
- Distillation (Hinton et al. 2015, the chapter's formula): ``alpha * CE(s, y) + (1 - alpha)
  * tau^2 * KL(softmax(t / tau) || softmax(s / tau))`` with the KL averaged over the batch
  (``F.kl_div(..., reduction="batchmean")``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = torch.finfo(torch.float32).eps
RANGES = {torch.int8: (-128, 127), torch.uint8: (0, 255)}


def qrange(dtype: torch.dtype) -> tuple[int, int]:
    if dtype not in RANGES:
        raise ValueError(f"dtype must be torch.int8 or torch.uint8, got {dtype}")
    return RANGES[dtype]


def _per_slice(x: torch.Tensor, axis: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(min, max) of x, or of each slice along ``axis``, in float64."""
    x = x.detach().double().cpu()
    if axis is None:
        return x.min(), x.max()
    flat = x.movedim(axis, 0).reshape(x.shape[axis], -1)
    return flat.min(dim=1).values, flat.max(dim=1).values


def affine_qparams(
    x: torch.Tensor, dtype: torch.dtype = torch.int8, axis: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale float64, zero_point int64): 0-d per tensor, ``(x.shape[axis],)`` per channel."""
    qmin, qmax = qrange(dtype)
    lo, hi = _per_slice(x, axis)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = ((hi - lo) / (qmax - qmin)).clamp(min=EPS)
    zero_point = (qmin - torch.round(lo / scale)).clamp(qmin, qmax).to(torch.int64)
    return scale, zero_point


def _broadcast(value: torch.Tensor, x: torch.Tensor, axis: int | None) -> torch.Tensor:
    """A per-tensor (0-d) or per-channel ((C,)) parameter shaped to broadcast against x."""
    value = torch.as_tensor(value).cpu()
    if axis is None or value.dim() == 0:
        return value
    shape = [1] * x.dim()
    shape[axis] = -1
    return value.reshape(shape)


def quantize(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    dtype: torch.dtype = torch.int8,
    axis: int | None = None,
) -> torch.Tensor:
    """``clamp(round(x / scale) + zero_point, qmin, qmax)`` as int64 (exact)."""
    qmin, qmax = qrange(dtype)
    x = x.detach().double().cpu()
    s = _broadcast(torch.as_tensor(scale).double(), x, axis)
    z = _broadcast(torch.as_tensor(zero_point).double(), x, axis)
    return (torch.round(x / s) + z).clamp(qmin, qmax).to(torch.int64)


def dequantize(
    q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int | None = None
) -> torch.Tensor:
    """``(q - zero_point) * scale`` in float64."""
    q = q.detach().cpu().double()
    s = _broadcast(torch.as_tensor(scale).double(), q, axis)
    z = _broadcast(torch.as_tensor(zero_point).double(), q, axis)
    return (q - z) * s


def int8_matmul(qa, scale_a, zero_a, qb, scale_b, zero_b) -> tuple[torch.Tensor, torch.Tensor]:
    """(int32 accumulator (M, N), float64 output (M, N)); b's parameters 0-d or (N,)."""
    a = qa.cpu().to(torch.int64) - int(zero_a)
    zb = torch.as_tensor(zero_b).cpu().to(torch.int64)
    b = qb.cpu().to(torch.int64) - zb  # (K, N) - (N,) broadcasts per column
    acc = a @ b
    out = float(scale_a) * torch.as_tensor(scale_b).double().cpu() * acc.double()
    return acc.to(torch.int32), out


def prune_count(amount: int | float, n: int) -> int:
    """How many of ``n`` entries ``amount`` prunes, as ``torch.nn.utils.prune`` counts."""
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise TypeError("amount is an int (a count) or a float (a fraction)")
    if isinstance(amount, int):
        return amount
    return round(amount * n)


def l1_unstructured(weight: torch.Tensor, amount: int | float) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight * mask, mask): the ``prune_count`` entries of smallest |w| set to 0."""
    w = weight.detach().double().cpu()
    k = prune_count(amount, w.numel())
    mask = torch.ones(w.numel(), dtype=torch.float64)
    if k > 0:
        mask[torch.argsort(w.abs().reshape(-1), stable=True)[:k]] = 0
    mask = mask.reshape(w.shape)
    return w * mask, mask


def ln_structured(
    weight: torch.Tensor, amount: int | float, n: float = 2, dim: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight * mask, mask): the ``prune_count`` slices along ``dim`` of smallest Ln norm."""
    w = weight.detach().double().cpu()
    k = prune_count(amount, w.shape[dim])
    flat = w.movedim(dim, 0).reshape(w.shape[dim], -1)
    norms = torch.linalg.vector_norm(flat, ord=n, dim=1)
    keep = torch.ones(w.shape[dim], dtype=torch.float64)
    if k > 0:
        keep[torch.argsort(norms, stable=True)[:k]] = 0
    shape = [1] * w.dim()
    shape[dim] = -1
    mask = keep.reshape(shape).expand(w.shape).clone()
    return w * mask, mask


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    tau: float = 4.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    """alpha * CE + (1 - alpha) * tau^2 * KL(teacher || student) on softened distributions."""
    s, t = student_logits.double(), teacher_logits.double()
    hard = F.cross_entropy(s, labels)
    soft = F.kl_div(F.log_softmax(s / tau, dim=1), F.softmax(t / tau, dim=1), reduction="batchmean")
    return alpha * hard + (1 - alpha) * tau**2 * soft


def distillation_loss_explicit(student_logits, teacher_logits, labels, tau=4.0, alpha=0.5):
    """The same loss written out as sums, for the cross-check in the project's tests."""
    s, t = student_logits.double(), teacher_logits.double()
    n = s.shape[0]
    log_p = s - torch.logsumexp(s, dim=1, keepdim=True)
    ce = -log_p[torch.arange(n), labels].mean()
    log_ps = s / tau - torch.logsumexp(s / tau, dim=1, keepdim=True)
    log_pt = t / tau - torch.logsumexp(t / tau, dim=1, keepdim=True)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum() / n
    return alpha * ce + (1 - alpha) * tau**2 * kl


def is_half_tie(values: torch.Tensor, margin: float) -> bool:
    """Is any value within ``margin`` of a half-integer (where rounding styles may differ)?"""
    frac = values.double() - torch.floor(values.double())
    return bool(((frac - 0.5).abs() < margin).any())
