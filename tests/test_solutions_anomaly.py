"""Do the anomaly references agree with scikit-learn, torchvision and the stated conventions?"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve  # a test-only dependency, pinned
from torchvision.ops import sigmoid_focal_loss

from solutions import anomaly as ref


def scene(seed: int, positives: int, negatives: int, decimals: int | None = None):
    """Labels in random order and scores shifted up for defects; rounded when ``decimals``."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.tensor([1] * positives + [0] * negatives)
    labels = labels[torch.randperm(len(labels), generator=generator)]
    scores = torch.randn(len(labels), generator=generator, dtype=torch.float64) + labels
    if decimals is not None:
        scores = torch.round(scores * 10**decimals) / 10**decimals
    return scores, labels


SCENES = [(0, 60, 20, None), (1, 5, 5, None), (2, 47, 30, 0), (3, 131, 70, 1), (4, 7, 123, None)]


@pytest.mark.parametrize("seed, positives, negatives, decimals", SCENES)
def test_auroc_is_sklearns_roc_auc_score(seed, positives, negatives, decimals):
    scores, labels = scene(seed, positives, negatives, decimals)
    assert ref.auroc(scores, labels) == pytest.approx(
        roc_auc_score(labels.numpy(), scores.numpy()), abs=1e-12
    )


def test_auroc_counts_a_tie_as_one_half():
    assert ref.auroc(torch.tensor([0.5, 0.5]), torch.tensor([1, 0])) == 0.5
    assert ref.auroc(torch.tensor([0.2, 0.4, 0.6, 0.4, 0.6]), torch.tensor([0, 0, 0, 1, 1])) == (
        pytest.approx(4 / 6)
    )
    with pytest.raises(ValueError):
        ref.auroc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1]))


def sklearn_fpr_at_recall(scores, labels, recall):
    """The rule as scikit-learn tabulates it: the first (largest) threshold with TPR >= recall."""
    fpr, tpr, thresholds = roc_curve(labels.numpy(), scores.numpy(), drop_intermediate=False)
    first = int(np.argmax(tpr >= recall))
    return float(fpr[first]), float(thresholds[first])


@pytest.mark.parametrize("recall", [0.95, 0.9, 0.8, 0.5])
@pytest.mark.parametrize("seed, positives, negatives, decimals", SCENES)
def test_fpr_at_recall_is_sklearns_roc_curve(seed, positives, negatives, decimals, recall):
    scores, labels = scene(seed, positives, negatives, decimals)
    assert ref.fpr_at_recall(scores, labels, recall) == pytest.approx(
        sklearn_fpr_at_recall(scores, labels, recall), abs=1e-12
    )


def test_fpr_at_recall_flags_scores_equal_to_the_threshold():
    scores = torch.tensor([*range(1, 11), 0.5, 2.5, 4.5, 6.5, 8.5], dtype=torch.float64)
    labels = torch.tensor([1] * 10 + [0] * 5)
    assert ref.fpr_at_recall(scores, labels) == (0.8, 1.0)  # 9/10 < 0.95: every defect needed
    assert ref.fpr_at_recall(scores, labels, 0.7) == (0.6, 4.0)


def test_pixel_iou_pools_pixels_and_calls_an_empty_union_perfect():
    maps = torch.zeros(2, 4, 4)
    maps[0, :2, :2] = 1.0
    maps[1, 3, 3] = 0.5  # at the threshold: predicted
    masks = torch.zeros(2, 4, 4)
    masks[0, :2, :3] = 1
    assert ref.pixel_iou(maps, masks, 0.5) == pytest.approx(4 / 7)
    assert ref.pixel_iou(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3), 0.5) == 1.0
    assert ref.pixel_iou(torch.zeros(1, 3, 3), torch.ones(1, 3, 3), 0.5) == 0.0


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (0.5, 0.0), (0.75, 3.0)])
def test_focal_loss_is_torchvisions_and_half_bce_at_gamma_0(alpha, gamma):
    generator = torch.Generator().manual_seed(5)
    logits = 4 * torch.randn(2, 1, 8, 8, generator=generator, dtype=torch.float64)
    targets = (torch.rand(2, 1, 8, 8, generator=generator) < 0.2).double()
    expected = sigmoid_focal_loss(logits, targets, alpha, gamma, reduction="mean")
    torch.testing.assert_close(ref.focal_loss(logits, targets, alpha, gamma), expected)
    if gamma == 0 and alpha == 0.5:
        bce = F.binary_cross_entropy_with_logits(logits, targets)
        torch.testing.assert_close(ref.focal_loss(logits, targets, alpha, gamma), bce / 2)


def test_dice_loss_closed_form():
    generator = torch.Generator().manual_seed(6)
    logits = torch.randn(3, 1, 6, 6, generator=generator, dtype=torch.float64)
    targets = (torch.rand(3, 1, 6, 6, generator=generator) < 0.3).double()
    p = torch.sigmoid(logits)
    dice = [
        (2 * (p[n] * targets[n]).sum() + 1) / (p[n].sum() + targets[n].sum() + 1) for n in range(3)
    ]
    torch.testing.assert_close(ref.dice_loss(logits, targets), 1 - torch.stack(dice).mean())
    perfect = torch.full((1, 1, 4, 4), -40.0, dtype=torch.float64)
    assert float(ref.dice_loss(perfect, torch.zeros_like(perfect))) == pytest.approx(0, abs=1e-12)


def test_patch_features_average_resize_and_concatenate():
    generator = torch.Generator().manual_seed(7)
    layer2 = torch.randn(2, 4, 8, 8, generator=generator, dtype=torch.float64)
    layer3 = torch.randn(2, 6, 4, 4, generator=generator, dtype=torch.float64)
    features = ref.patch_features([layer2, layer3])
    assert features.shape == (2, 8, 8, 10)
    torch.testing.assert_close(features[:, 0, 0, :4], layer2[:, :, :2, :2].sum((2, 3)) / 9)
    torch.testing.assert_close(features[:, 3, 4, :4], layer2[:, :, 2:5, 3:6].mean((2, 3)))
    pooled = F.avg_pool2d(layer3, 3, 1, 1)
    upsampled = F.interpolate(pooled, size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(features[..., 4:], upsampled.permute(0, 2, 3, 1))


def test_coreset_is_greedy_k_centre_and_the_map_is_the_nearest_distance():
    line = torch.tensor([0.0, 1.0, 10.0, 4.0, 7.0], dtype=torch.float64).reshape(1, 1, 5, 1)
    assert ref.memory_bank(line, 3)[:, 0].tolist() == [0.0, 10.0, 4.0]
    assert ref.memory_bank(line, 4)[:, 0].tolist() == [0.0, 10.0, 4.0, 7.0]  # 1 is 1 from 0
    assert ref.memory_bank(line).shape == (5, 1)
    generator = torch.Generator().manual_seed(8)
    bank = torch.randn(40, 8, generator=generator, dtype=torch.float64)
    features = torch.randn(2, 3, 3, 8, generator=generator, dtype=torch.float64)
    features[0, 1, 2] = bank[5]
    maps = ref.anomaly_map(features, bank)
    torch.testing.assert_close(
        maps, torch.cdist(features.reshape(-1, 8), bank).min(1).values.reshape(2, 3, 3)
    )
    assert float(maps[0, 1, 2]) == 0.0
    torch.testing.assert_close(ref.image_scores(maps), maps.amax(dim=(1, 2)))


def test_reference_scorer_is_the_float64_map_in_float32():
    from tests.conftest import load_cnnkit

    mvtec = importlib.import_module(f"{load_cnnkit().__name__}.mvtec")
    backbone = mvtec.patch_backbone(seed=2)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        rows = ref.patch_features(list(backbone(torch.rand(2, 3, 64, 64, generator=generator))))
        bank = rows.reshape(-1, rows.shape[-1])[::3].float()
        x = torch.rand(3, 3, 64, 64, generator=generator)
        maps, scores = ref.ReferenceScorer(backbone, bank)(x)
        expected = ref.anomaly_map(ref.patch_features(list(backbone(x))), bank)
    assert maps.dtype == torch.float32 and maps.shape == (3, 8, 8)
    torch.testing.assert_close(maps.double(), expected, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(scores.double(), ref.image_scores(expected), rtol=1e-3, atol=1e-3)
    seconds = ref.reference_cpu_per_image(backbone, bank, x[:2], rounds=1)
    assert 0 < seconds < 1
