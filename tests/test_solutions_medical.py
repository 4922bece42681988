"""Do the Lab 3 references agree with scikit-learn, PyTorch and the stated conventions?"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix as sk_confusion_matrix  # test-only dependency
from sklearn.metrics import roc_curve
from sklearn.utils.class_weight import compute_class_weight

from solutions import medical as ref

# --------------------------------------------------------------------------- class weights


@pytest.mark.parametrize("seed", range(6))
def test_balanced_weights_are_scikit_learns(seed):
    generator = torch.Generator().manual_seed(seed)
    k = 2 + seed % 4
    probabilities = torch.softmax(2 * torch.randn(k, generator=generator), 0)
    while True:
        labels = torch.multinomial(probabilities, 50 + 40 * seed, True, generator=generator)
        if len(labels.unique()) == k:
            break
    expected = compute_class_weight("balanced", classes=np.arange(k), y=labels.numpy())
    np.testing.assert_allclose(ref.balanced_class_weights(labels, k).numpy(), expected, rtol=1e-12)


def test_balanced_weights_equalise_the_classes():
    labels = torch.tensor([0] * 1341 + [1] * 3875)
    weights = ref.balanced_class_weights(labels, 2)
    assert torch.allclose(
        weights * torch.tensor([1341.0, 3875.0]).double(), torch.tensor(2608.0).double()
    )


# --------------------------------------------------------------------------- weighted loss


def test_the_weighted_loss_is_a_weighted_mean():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(9, 3, generator=generator, dtype=torch.float64)
    targets = torch.tensor([0, 1, 2, 2, 1, 0, 0, 0, 2])
    weight = torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64)
    nll = -torch.log_softmax(logits, 1)[torch.arange(9), targets]
    by_hand = (weight[targets] * nll).sum() / weight[targets].sum()
    assert torch.allclose(ref.weighted_cross_entropy(logits, targets, weight), by_hand)
    assert torch.allclose(ref.weighted_cross_entropy(logits, targets), nll.mean())
    assert torch.allclose(ref.weighted_cross_entropy(logits, targets, weight * 5), by_hand)


# --------------------------------------------------------------------------- rates


@pytest.mark.parametrize("seed", range(5))
def test_the_confusion_matrix_has_scikit_learns_layout(seed):
    generator = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 2, (40,), generator=generator)
    preds = torch.randint(0, 2, (40,), generator=generator)
    expected = sk_confusion_matrix(targets.numpy(), preds.numpy(), labels=[0, 1])
    assert ref.confusion_matrix(preds, targets).tolist() == expected.tolist()
    (tn, fp), (fn, tp) = expected.tolist()
    sensitivity, specificity = ref.sensitivity_specificity(preds, targets)
    assert sensitivity == tp / (tp + fn) and specificity == tn / (tn + fp)


def test_undefined_rates_are_nan():
    negatives = torch.zeros(5, dtype=torch.int64)
    sensitivity, specificity = ref.sensitivity_specificity(torch.tensor([0, 1, 0, 0, 1]), negatives)
    assert sensitivity != sensitivity and specificity == 3 / 5


# --------------------------------------------------------------------------- threshold


def roc_threshold(scores: torch.Tensor, targets: torch.Tensor, target: float) -> float:
    """The largest threshold of scikit-learn's ROC curve whose TPR reaches ``target``."""
    fpr, tpr, thresholds = roc_curve(
        targets.numpy(), scores.double().numpy(), drop_intermediate=False
    )
    reached = thresholds[tpr >= target]
    return float(reached.max())


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("target", [0.5, 0.8, 0.9, 0.95, 1.0])
def test_the_threshold_rule_reads_the_roc_curve(seed, target):
    generator = torch.Generator().manual_seed(seed)
    n = 30 + 20 * seed
    targets = (torch.rand(n, generator=generator) < 0.6).long()
    targets[0] = 1
    scores = torch.sigmoid(torch.randn(n, generator=generator) + 1.5 * targets).float()
    if seed % 2:  # ties
        scores = (scores * 10).round() / 10
    threshold = ref.threshold_for_sensitivity(scores, targets, target)
    assert threshold == roc_threshold(scores, targets, target)
    assert ref.sensitivity_at(scores, targets, threshold) >= target
    higher = scores[scores.double() > threshold]
    if len(higher):  # the next score up no longer reaches the target
        assert ref.sensitivity_at(scores, targets, float(higher.double().min())) < target


# --------------------------------------------------------------------------- Grad-CAM


def small_cnn(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 5, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(5, 7, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(7, 3),
    )
    return net.double().eval()


@pytest.mark.parametrize("seed", range(3))
def test_grad_cam_is_cam_for_a_pooled_linear_head(seed):
    """With global average pooling and a linear layer, Grad-CAM at the last block is Zhou et
    al.'s class activation map relu(sum_k W[c, k] A_k) divided by h * w."""
    net = small_cnn(seed)
    x = torch.rand(2, 3, 6, 9, dtype=torch.float64)
    activations = net[:4](x).detach()
    for c in range(3):
        expected = F.relu(torch.einsum("k,nkij->nij", net[6].weight[c].detach(), activations))
        got = ref.grad_cam(net, net[3], x, c, upsample=False)
        assert torch.allclose(got, expected / (6 * 9), atol=1e-12)


def test_grad_cam_upsamples_like_opencv_and_removes_its_hook():
    net = small_cnn(0).requires_grad_(False)
    x = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    small = ref.grad_cam(net, net[3], x, torch.tensor([0, 2]), upsample=False)
    big = ref.grad_cam(net, net[3], x, torch.tensor([0, 2]))
    assert big.shape == (2, 5, 7) and not net[3]._forward_hooks
    # half-pixel centres, as cv2.resize(INTER_LINEAR): an upsampled constant stays constant
    expected = F.interpolate(small[:, None], size=(5, 7), mode="bilinear", align_corners=False)
    assert torch.equal(big, expected[:, 0])


def test_grad_cam_takes_the_logit_not_the_softmax():
    net = small_cnn(1)
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64)
    activations = net[:4](x).detach().requires_grad_(True)
    logits = net[4:](activations)
    (grads,) = torch.autograd.grad(logits[0, 1], activations)
    expected = F.relu((grads.mean((2, 3), keepdim=True) * activations).sum(1)).detach()
    assert torch.allclose(ref.grad_cam(net, net[3], x, 1, upsample=False), expected)
