"""References for c12_transfer_medical (Lab 3): class weights, weighted cross-entropy,
the binary confusion matrix, sensitivity and specificity, the threshold for a target
sensitivity, and Grad-CAM.

- Classes: 0 = NORMAL (negative), 1 = PNEUMONIA (positive), as torchvision's
  ``ImageFolder`` numbers the sorted folder names.
- Balanced class weights are scikit-learn's ``compute_class_weight("balanced")``:
  ``n_samples / (n_classes * count_c)`` (tests/test_solutions_medical.py cross-checks).
- The weighted cross-entropy is ``F.cross_entropy(logits, targets, weight=w)``: a weighted
  mean, ``sum_i w[y_i] * nll_i / sum_i w[y_i]``.
- The confusion matrix is scikit-learn's layout: ``matrix[true, predicted]``, so
  ``[[TN, FP], [FN, TP]]``. Sensitivity ``TP / (TP + FN)``, specificity ``TN / (TN + FP)``;
  NaN when the denominator is 0 (no positives, or no negatives).
- The threshold for a target sensitivity: the largest score ``t`` among the given scores
  whose sensitivity with predictions ``score >= t`` is at least the target (scikit-learn's
  ``roc_curve`` predicts the same way; the cross-check reads its curve).
- Grad-CAM (Selvaraju et al. 2017, pytorch-grad-cam's conventions): the activations ``A``
  of the hooked layer, the gradient of the target class's logit (not its softmax) summed
  over the batch, channel weights = the gradient's spatial mean, ``relu(sum_k w_k A_k)``,
  then bilinear upsampling to the input's size with ``align_corners=False`` (what
  OpenCV's ``resize`` does). No normalisation to [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def balanced_class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    counts = torch.bincount(labels.cpu().long(), minlength=num_classes).double()
    return len(labels) / (num_classes * counts)


def weighted_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    weight = None if weight is None else weight.double().cpu()
    return F.cross_entropy(logits.double().cpu(), targets.cpu().long(), weight=weight)


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    matrix = torch.zeros(2, 2, dtype=torch.int64)
    for truth, predicted in zip(targets.cpu().long().tolist(), preds.cpu().long().tolist()):
        matrix[truth, predicted] += 1
    return matrix


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


def sensitivity_specificity(preds: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    (tn, fp), (fn, tp) = confusion_matrix(preds, targets).tolist()
    return _ratio(tp, tp + fn), _ratio(tn, tn + fp)


def sensitivity_at(scores: torch.Tensor, targets: torch.Tensor, threshold: float) -> float:
    positives = targets.cpu().long() == 1
    hits = (scores.cpu().double() >= threshold) & positives
    return int(hits.sum()) / int(positives.sum())


def threshold_for_sensitivity(
    scores: torch.Tensor, targets: torch.Tensor, target_sensitivity: float
) -> float:
    """The largest of ``scores`` whose sensitivity (predictions ``score >= t``) is at least
    ``target_sensitivity``; the scores must include a positive."""
    for candidate in sorted(set(scores.cpu().double().tolist()), reverse=True):
        if sensitivity_at(scores, targets, candidate) >= target_sensitivity:
            return candidate
    raise ValueError("no threshold reaches the target sensitivity (no positives?)")


def grad_cam(
    model: torch.nn.Module,
    layer: torch.nn.Module,
    x: torch.Tensor,
    target: int | torch.Tensor,
    upsample: bool = True,
) -> torch.Tensor:
    """``(N, H, W)`` maps (``(N, h, w)``, the layer's resolution, without ``upsample``)."""
    store = {}
    handle = layer.register_forward_hook(lambda module, args, output: store.setdefault("a", output))
    try:
        with torch.enable_grad():
            logits = model(x.detach().clone().requires_grad_(True))
            activations = store["a"]
            index = torch.as_tensor(target, device=logits.device).long().expand(len(logits))
            score = logits.gather(1, index[:, None]).sum()
            (grads,) = torch.autograd.grad(score, activations)
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (N, K, 1, 1)
    cam = F.relu((weights * activations).sum(dim=1)).detach()  # (N, h, w)
    if upsample:
        cam = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)
        cam = cam[:, 0]
    return cam
