"""Hidden tests for c12_augmentation: MixUp, CutMix, Cutout and a soft-label cross-entropy.

- ``mixup`` and ``cutmix`` against torchvision's ``v2.MixUp`` and ``v2.CutMix`` with the
  random draw injected (``solutions/augmentation.py``), and the written-out rule for a
  given permutation; ``cutmix_box`` against v2's box rule.
- ``cutout`` against DeVries and Taylor's reference rule.
- ``soft_cross_entropy`` against ``F.cross_entropy`` (index and probability targets,
  label smoothing) in float64.
"""

from __future__ import annotations

import pytest
import torch

from solutions import augmentation as ref


def batch(inputs, n: int, size: tuple[int, int] = (8, 10), classes: int = 10):
    images = inputs.rand(n, 3, *size)
    labels = inputs.randint(0, classes, n)
    return images, labels


def permutation(inputs, n: int) -> torch.Tensor:
    return torch.argsort(inputs.rand(n))


def close_pair(check, got, expected, what: str) -> None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        check.fail(f"should return a pair (images, targets), got {type(got).__name__}")
    index = 0 if what == "images" else 1
    check.close(got[index], expected[index].double(), what)


# --------------------------------------------------------------------------- MixUp

MIXUPS = [
    (4, 0.3, False),
    (6, 0.5, False),
    (5, 0.0, False),
    (3, 1.0, False),
    (1, 0.7, False),
    (5, 0.3, True),
    (6, 0.85, True),
]


def mixup_case(n, lam, with_perm):
    label = f"{n} images, lam {lam}" + (", a permutation" if with_perm else ", roll(1)")
    return pytest.param(n, lam, with_perm, id=label)


def run_mixup(student, inputs, reference, n, lam, with_perm):
    images, labels = batch(inputs, n)
    perm = permutation(inputs, n) if with_perm else None
    expected = reference(lambda: ref.mixup(images, labels, lam, 10, perm))
    got = student.mixup(images, labels, lam, 10, perm)
    return got, expected


@pytest.mark.parametrize("n, lam, with_perm", [mixup_case(*case) for case in MIXUPS])
def test_mixup_images(student, check, inputs, reference, n, lam, with_perm):
    got, expected = run_mixup(student, inputs, reference, n, lam, with_perm)
    close_pair(check, got, expected, "images")


@pytest.mark.parametrize("n, lam, with_perm", [mixup_case(*case) for case in MIXUPS])
def test_mixup_targets(student, check, inputs, reference, n, lam, with_perm):
    got, expected = run_mixup(student, inputs, reference, n, lam, with_perm)
    close_pair(check, got, expected, "targets")


# --------------------------------------------------------------------------- CutMix

BOXES = [
    (0.5, 32, 32, 16, 16),
    (0.75, 32, 32, 4, 30),  # clipped in a corner
    (0.3, 20, 30, 0, 10),  # left border
    (0.6, 20, 30, 29, 19),  # right and bottom borders
    (0.9, 17, 13, 6, 8),
    (0.0, 10, 12, 5, 5),  # lam 0: the largest box
    (1.0, 10, 12, 3, 4),  # an empty box
    (0.2, 9, 31, 30, 0),
]


@pytest.mark.parametrize(
    "lam, height, width, cx, cy",
    BOXES,
    ids=[f"lam {b[0]}, {b[1]}x{b[2]}, centre ({b[3]}, {b[4]})" for b in BOXES],
)
def test_cutmix_box(student, check, lam, height, width, cx, cy):
    expected = ref.cutmix_box(lam, height, width, cx, cy)
    got = student.cutmix_box(lam, height, width, cx, cy)
    if not isinstance(got, (tuple, list)) or len(got) != 4:
        check.fail(f"cutmix_box should return (x1, y1, x2, y2), got {type(got).__name__}")
    check.that(
        all(type(value) is int for value in got),
        f"the box should hold Python ints, got {[type(value).__name__ for value in got]}",
    )
    check.equal(list(got), list(expected), "box (x1, y1, x2, y2)")


CUTMIXES = [
    (4, (16, 16), 0.5, 8, 8, False),
    (3, (32, 32), 0.75, 4, 30, False),
    (5, (20, 30), 0.3, 0, 10, False),
    (2, (9, 11), 0.6, 10, 8, False),
    (6, (16, 12), 0.4, 6, 2, True),
    (4, (12, 12), 0.1, 11, 0, True),
]


def cutmix_case(n, size, lam, cx, cy, with_perm):
    label = f"{n} images {size[0]}x{size[1]}, lam {lam}, centre ({cx}, {cy})"
    return pytest.param(n, size, lam, cx, cy, with_perm, id=label + (", perm" if with_perm else ""))


CUTMIX_ARGS = "n, size, lam, cx, cy, with_perm"


def run_cutmix(student, inputs, reference, n, size, lam, cx, cy, with_perm):
    images, labels = batch(inputs, n, size)
    perm = permutation(inputs, n) if with_perm else None
    expected = reference(lambda: ref.cutmix(images, labels, lam, cx, cy, 10, perm))
    got = student.cutmix(images, labels, lam, cx, cy, 10, perm)
    return got, expected


@pytest.mark.parametrize(CUTMIX_ARGS, [cutmix_case(*case) for case in CUTMIXES])
def test_cutmix_images(student, check, inputs, reference, n, size, lam, cx, cy, with_perm):
    got, expected = run_cutmix(student, inputs, reference, n, size, lam, cx, cy, with_perm)
    close_pair(check, got, expected, "images")


@pytest.mark.parametrize(CUTMIX_ARGS, [cutmix_case(*case) for case in CUTMIXES])
def test_cutmix_targets(student, check, inputs, reference, n, size, lam, cx, cy, with_perm):
    got, expected = run_cutmix(student, inputs, reference, n, size, lam, cx, cy, with_perm)
    close_pair(check, got, expected, "targets")


# --------------------------------------------------------------------------- Cutout

CUTOUTS = [
    ((2, 3, 10, 12), [[5, 5], [0, 9]], 4, 0.0),
    ((3, 1, 16, 16), [[15, 15], [8, 0], [3, 12]], 5, 0.0),
    ((2, 3, 9, 7), [[6, 4], [1, 1]], 6, 0.5),
    ((1, 3, 8, 8), [[4, 4]], 16, -1.0),
    ((2, 2, 11, 13), [[12, 3], [2, 10]], 3, 0.0),
]


@pytest.mark.parametrize(
    "shape, centers, size, fill",
    CUTOUTS,
    ids=[f"{s}, size {n}, fill {f}, centres {c}" for s, c, n, f in CUTOUTS],
)
def test_cutout_values(student, check, inputs, shape, centers, size, fill):
    images = inputs.rand(*shape) + 1.0
    centers = torch.tensor(centers)
    expected = ref.cutout(images, centers, size, fill)
    got = student.cutout(images, centers, size, fill)
    check.close(got, expected)


# --------------------------------------------------------------------------- the loss


def ce_case(n, k, eps, scale=3.0):
    return pytest.param(n, k, eps, scale, id=f"{n} x {k} logits (scale {scale}), smoothing {eps}")


@pytest.mark.parametrize(
    "n, k, eps, scale",
    [ce_case(5, 10, 0.0), ce_case(4, 7, 0.1), ce_case(6, 3, 0.3), ce_case(3, 5, 0.0, 40.0)],
)
def test_ce_indices(student, check, inputs, reference, n, k, eps, scale):
    logits = scale * inputs.randn(n, k)
    targets = inputs.randint(0, k, n)
    expected = reference(lambda: ref.soft_cross_entropy(logits, targets, eps))
    check.close(student.soft_cross_entropy(logits, targets, eps), expected)


@pytest.mark.parametrize(
    "n, k, eps, scale",
    [ce_case(5, 10, 0.0), ce_case(4, 6, 0.1), ce_case(3, 4, 0.25), ce_case(6, 10, 0.0, 30.0)],
)
def test_ce_soft(student, check, inputs, reference, n, k, eps, scale):
    logits = scale * inputs.randn(n, k)
    targets = torch.softmax(2 * inputs.randn(n, k), dim=1)
    expected = reference(lambda: ref.soft_cross_entropy(logits, targets, eps))
    check.close(student.soft_cross_entropy(logits, targets, eps), expected)
