"""Do the augmentation references agree with torchvision's v2 transforms and the papers' rules?"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2

from solutions import augmentation as ref


def batch(n: int = 5, size: tuple[int, int] = (12, 16), seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, *size, generator=generator, dtype=torch.float64)
    return images, torch.randint(0, 10, (n,), generator=generator)


@pytest.mark.parametrize("seed", range(20))
def test_cutmix_box_is_v2s_rule(seed):
    """v2.CutMix draws lambda, then the centre's x, then its y; replaying that order with
    the same seed gives the centre, and the stated rule must give v2's box and weight."""
    height, width = 12 + seed % 5, 16 + seed % 7
    transform = v2.CutMix(num_classes=10, alpha=1.0)
    torch.manual_seed(seed)
    params = transform.make_params([torch.zeros(2, 3, height, width)])
    torch.manual_seed(seed)
    lam = float(transform._dist.sample(()))
    center_x, center_y = int(torch.randint(width, (1,))), int(torch.randint(height, (1,)))
    box = ref.cutmix_box(lam, height, width, center_x, center_y)
    assert box == tuple(params["box"])
    x1, y1, x2, y2 = box
    assert params["lam_adjusted"] == pytest.approx(1 - (x2 - x1) * (y2 - y1) / (width * height))


@pytest.mark.parametrize("lam", [0.0, 0.37, 1.0])
def test_mixup_is_the_convex_combination_with_roll_partners(lam):
    images, labels = batch()
    mixed, targets = ref.mixup(images, labels, lam, 10)
    assert torch.allclose(mixed, lam * images + (1 - lam) * images.roll(1, 0))
    one_hot = F.one_hot(labels, 10).double()
    assert torch.allclose(targets.double(), lam * one_hot + (1 - lam) * one_hot.roll(1, 0))
    assert torch.allclose(targets.sum(1), torch.ones(5, dtype=targets.dtype))


def test_a_roll_permutation_gives_v2s_pairs():
    images, labels = batch()
    perm = torch.arange(5).roll(1)  # partner of i is i - 1
    for function, args in [(ref.mixup, (0.3, 10)), (ref.cutmix, (0.4, 5, 7, 10))]:
        rolled = function(images, labels, *args)
        permuted = function(images, labels, *args, perm)
        assert torch.allclose(rolled[0], permuted[0])
        assert torch.allclose(rolled[1].double(), permuted[1].double())


def test_cutmix_pastes_only_the_box_and_weights_by_its_area():
    images, labels = batch(4, (10, 10))
    perm = torch.tensor([2, 0, 3, 1])
    mixed, targets = ref.cutmix(images, labels, 0.64, 9, 1, 10, perm)
    x1, y1, x2, y2 = ref.cutmix_box(0.64, 10, 10, 9, 1)
    assert (x1, y1, x2, y2) == (6, 0, 10, 4)  # half side int(0.5 * 0.6 * 10) = 3, clipped
    inside = torch.zeros(10, 10, dtype=torch.bool)
    inside[y1:y2, x1:x2] = True
    assert torch.equal(mixed[..., inside], images[perm][..., inside])
    assert torch.equal(mixed[..., ~inside], images[..., ~inside])
    kept = 1 - 16 / 100
    one_hot = F.one_hot(labels, 10).double()
    assert torch.allclose(targets, kept * one_hot + (1 - kept) * one_hot[perm])


def test_cutout_follows_the_reference_code():
    """DeVries and Taylor's numpy code: y1 = clip(y - L // 2, 0, h), y2 = clip(y + L // 2, 0, h)."""
    images = torch.ones(3, 2, 9, 11, dtype=torch.float64)
    centers = torch.tensor([[5, 4], [0, 0], [10, 8]])
    for length in (1, 4, 5, 30):
        out = ref.cutout(images, centers, length, fill=-2.0)
        for i, (x, y) in enumerate(centers.tolist()):
            mask = torch.ones(9, 11, dtype=torch.float64)
            y1, y2 = (min(max(v, 0), 9) for v in (y - length // 2, y + length // 2))
            x1, x2 = (min(max(v, 0), 11) for v in (x - length // 2, x + length // 2))
            mask[y1:y2, x1:x2] = 0
            expected = images[i] * mask + (1 - mask) * -2.0
            assert torch.equal(out[i], expected)
    assert torch.equal(images, torch.ones_like(images)), "the input is not modified"


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_soft_cross_entropy_is_the_definition(eps):
    generator = torch.Generator().manual_seed(1)
    logits = 5 * torch.randn(6, 4, generator=generator, dtype=torch.float64)
    probabilities = torch.softmax(torch.randn(6, 4, generator=generator, dtype=torch.float64), 1)
    smoothed = probabilities * (1 - eps) + eps / 4
    by_hand = -(smoothed * torch.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(ref.soft_cross_entropy(logits, probabilities, eps), by_hand)
    labels = probabilities.argmax(1)
    one_hot = F.one_hot(labels, 4).double() * (1 - eps) + eps / 4
    by_hand = -(one_hot * torch.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(ref.soft_cross_entropy(logits, labels, eps), by_hand)


def test_v2_mixup_with_a_fixed_lambda_is_what_the_reference_runs():
    images, labels = batch()
    mixed, targets = ref._FixedMixUp(0.25, 10)(tv_tensors.Image(images), labels)
    assert torch.allclose(mixed.as_subclass(torch.Tensor), 0.25 * images + 0.75 * images.roll(1, 0))
    assert math.isclose(float(targets[0].max()), 0.75) or math.isclose(float(targets[0].max()), 1.0)
