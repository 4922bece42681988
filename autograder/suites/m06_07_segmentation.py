"""Hidden suite for m06_07_segmentation: torchvision's FCNHead / ASPPConv / ASPP and the
metric references in solutions/segmentation.py, on seeded random label maps and masks.

Metric inputs are built from seeded label maps: void pixels, classes absent from both
prediction and target (NaN IoU), and the edge cases (every pixel void, one class only,
a class only in the prediction, empty masks, empty scenes). NaN must be NaN exactly
where the reference has it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torchvision.models.segmentation.deeplabv3 import ASPP, ASPPConv
from torchvision.models.segmentation.fcn import FCNHead

from autograder.fixtures import Fixtures
from autograder.judge import TENSOR_TAG, compare_structure, compare_tensors
from autograder.suite import Case, Suite, call, module, module_case
from solutions import segmentation as ref

SUITE = Suite("m06_07_segmentation")


# --------------------------------------------------------------------------- NaN-aware comparison


def _number(value) -> float | None:
    """A Python number, or a one-element tensor, as a float; None for anything else."""
    if type(value) in (int, float):
        return float(value)
    if isinstance(value, dict) and TENSOR_TAG in value and value[TENSOR_TAG].numel() == 1:
        return float(value[TENSOR_TAG].double())
    return None


def _nan_compare(actual, expected, rtol: float, atol: float, what: str) -> str | None:
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or TENSOR_TAG in actual:
            return f"{what} is not a dict with keys {sorted(expected)}"
        for key, value in expected.items():
            if key not in actual:
                return f"{what} has no '{key}'"
            failure = _nan_compare(actual[key], value, rtol, atol, f"{what}['{key}']")
            if failure:
                return failure
        return None
    if isinstance(expected, float):
        value = _number(actual)
        if value is None:
            return f"{what} is not a number"
        if math.isnan(expected) or math.isnan(value):
            return (
                None
                if math.isnan(expected) and math.isnan(value)
                else (
                    f"{what} is NaN, expected a number"
                    if math.isnan(value)
                    else f"{what} is a number, expected NaN"
                )
            )
        error = abs(value - expected)
        return None if error <= atol + rtol * abs(expected) else f"{what}: error {error:.1e}"
    if not (isinstance(actual, dict) and TENSOR_TAG in actual):
        return f"{what} is not a torch.Tensor"
    tensor = actual[TENSOR_TAG]
    if tuple(tensor.shape) != tuple(expected.shape):
        return f"{what} has shape {tuple(tensor.shape)}, expected {tuple(expected.shape)}"
    if not tensor.is_floating_point():
        return f"{what} has dtype {tensor.dtype}, expected a floating-point tensor"
    got_nan, want_nan = torch.isnan(tensor), torch.isnan(expected)
    if not torch.equal(got_nan, want_nan):
        extra, missing = int((got_nan & ~want_nan).sum()), int((want_nan & ~got_nan).sum())
        return f"{what}: {extra} NaN entries where a number is expected, {missing} numbers where NaN is expected"
    return compare_tensors(tensor[~got_nan], expected[~want_nan], rtol, atol, what)


def nan_aware(actual: dict, expected, rtol: float, atol: float) -> str | None:
    """Comparator: tensors, floats and dicts of floats, where NaN must match NaN."""
    return _nan_compare(actual.get("value"), expected, rtol, atol, "output")


# --------------------------------------------------------------------------- label maps


def label_maps(fx: Fixtures, shape: tuple, classes: int, void: float = 0.1, agree: float = 0.6):
    """Seeded ``(pred, target)``: target in [0, classes) with ``void`` of it 255; pred agrees with
    the target on about ``agree`` of the pixels and is a random class elsewhere."""
    target = fx.randint(0, classes, *shape)
    target[fx.rand(*shape) < void] = 255
    noise = fx.randint(0, classes, *shape)
    pred = torch.where((fx.rand(*shape) < agree) & (target != 255), target, noise)
    return pred, target


RANDOM_MAPS = [  # (shape, K, classes that occur)
    ((2, 13, 17), 21, 21),
    ((4, 8, 8), 5, 5),
    ((37,), 3, 3),
    ((2, 9, 9), 8, 6),  # classes 6 and 7 absent: NaN
    ((1, 20, 20), 21, 12),
]


def random_confusions(fx: Fixtures) -> Iterator[tuple[str, torch.Tensor]]:
    for shape, k, occurring in RANDOM_MAPS:
        pred, target = label_maps(fx, shape, occurring)
        yield (
            f"label maps {shape}, K={k}, {occurring} classes occur",
            ref.confusion_matrix(pred, target, k),
        )


def edge_confusions(fx: Fixtures) -> Iterator[tuple[str, torch.Tensor]]:
    pred, target = label_maps(fx, (2, 6, 7), 4)
    yield "every pixel void", ref.confusion_matrix(pred, torch.full_like(target, 255), 4)
    yield (
        "one class only",
        ref.confusion_matrix(torch.full((2, 5, 5), 2), torch.full((2, 5, 5), 2), 4),
    )
    only_predicted = torch.where(fx.rand(2, 6, 7) < 0.3, torch.tensor(3), pred.clamp(max=1))
    yield (
        "a class only in the prediction",
        ref.confusion_matrix(only_predicted, target.clamp(max=1), 4),
    )
    only_true = torch.where(target == 2, torch.tensor(0), target)
    yield "a class only in the target", ref.confusion_matrix(only_true, target, 4)


# --------------------------------------------------------------------------- modules


@SUITE.check("fcn_head_values")
def fcn_head_values(fx: Fixtures) -> Iterator[Case]:
    for c_in, k, shape in ((32, 21, (2, 32, 9, 11)), (16, 5, (1, 16, 7, 13)), (8, 3, (3, 8, 5, 5))):
        label = f"FCNHead({c_in}, {k}), eval mode, features {shape}"
        yield module_case(fx, label, "FCNHead", FCNHead(c_in, k), (c_in, k), [shape])


@SUITE.check("atrous_same_size")
def atrous_same_size(fx: Fixtures) -> Iterator[Case]:
    for c_in, c_out, rate, shape in (
        (4, 6, 1, (2, 4, 11, 14)),
        (3, 5, 2, (1, 3, 9, 9)),
        (2, 4, 3, (2, 2, 7, 10)),
        (4, 4, 6, (1, 4, 5, 6)),
    ):
        x = fx.randn(*shape).float()
        expected = {
            "shape": (shape[0], c_out, *shape[2:]),
            "parameter_count": 9 * c_in * c_out + 2 * c_out,
        }
        probe = module("AtrousConv", c_in, c_out, rate, inputs=(x,))
        yield Case(
            f"AtrousConv({c_in}, {c_out}, rate={rate}), x {shape}",
            probe,
            expected,
            compare_structure,
        )


@SUITE.check("atrous_values")
def atrous_values(fx: Fixtures) -> Iterator[Case]:
    for c_in, c_out, rate, shape in (
        (4, 6, 2, (2, 4, 11, 14)),
        (3, 5, 3, (1, 3, 9, 9)),
        (2, 4, 5, (2, 2, 7, 10)),
    ):
        label = f"AtrousConv({c_in}, {c_out}, rate={rate}), eval mode, x {shape}"
        yield module_case(
            fx, label, "AtrousConv", ASPPConv(c_in, c_out, rate), (c_in, c_out, rate), [shape]
        )
    label = "AtrousConv(4, 6, rate=2), train mode (batch statistics), x (4, 4, 8, 9)"
    yield module_case(
        fx, label, "AtrousConv", ASPPConv(4, 6, 2), (4, 6, 2), [(4, 4, 8, 9)], train=True
    )


@SUITE.check("aspp_structure")
def aspp_structure(fx: Fixtures) -> Iterator[Case]:
    for c_in, rates, c_out in ((64, (6, 12, 18), 32), (8, (1, 2), 4), (16, (2,), 16)):
        x = fx.randn(2, c_in, 9, 11).float()
        expected = {
            "shape": (2, c_out, 9, 11),
            "parameter_count": sum(p.numel() for p in ASPP(c_in, rates, c_out).parameters()),
        }
        probe = module("ASPP", c_in, rates, c_out, inputs=(x,))
        yield Case(
            f"ASPP({c_in}, {rates}, {c_out}), x (2, {c_in}, 9, 11)",
            probe,
            expected,
            compare_structure,
        )


@SUITE.check("aspp_values")
def aspp_values(fx: Fixtures) -> Iterator[Case]:
    for c_in, rates, c_out, shape in (
        (16, (1, 2, 3), 8, (2, 16, 9, 12)),
        (8, (6, 12, 18), 4, (1, 8, 13, 13)),
        (12, (2,), 6, (3, 12, 5, 7)),
    ):
        label = f"ASPP({c_in}, {rates}, {c_out}), eval mode, x {shape}"
        yield module_case(
            fx, label, "ASPP", ASPP(c_in, rates, c_out), (c_in, rates, c_out), [shape]
        )


# --------------------------------------------------------------------------- semantic metrics


@SUITE.check("confusion_values")
def confusion_values(fx: Fixtures) -> Iterator[Case]:
    for shape, k, occurring in RANDOM_MAPS:
        pred, target = label_maps(fx, shape, occurring)
        label = f"label maps {shape}, K={k}, about 10% void"
        yield Case(
            label, call("confusion_matrix", pred, target, k), ref.confusion_matrix(pred, target, k)
        )


@SUITE.check("confusion_edge")
def confusion_edge(fx: Fixtures) -> Iterator[Case]:
    pred, target = label_maps(fx, (2, 6, 7), 4)
    void = torch.full_like(target, 255)
    yield Case(
        "every pixel void",
        call("confusion_matrix", pred, void, 4),
        ref.confusion_matrix(pred, void, 4),
    )
    same = torch.full((2, 5, 5), 2)
    yield Case(
        "one class only",
        call("confusion_matrix", same, same, 4),
        ref.confusion_matrix(same, same, 4),
    )
    only_predicted = torch.where(fx.rand(2, 6, 7) < 0.3, torch.tensor(3), pred.clamp(max=1))
    expected = ref.confusion_matrix(only_predicted, target.clamp(max=1), 4)
    yield Case(
        "a class only in the prediction",
        call("confusion_matrix", only_predicted, target.clamp(max=1), 4),
        expected,
    )
    target = target.clamp(max=3)  # no 255: this case leaves out class 0 instead
    expected = ref.confusion_matrix(pred, target, 4, ignore_index=0)
    yield Case(
        "ignore_index=0", call("confusion_matrix", pred, target, 4, ignore_index=0), expected
    )


@SUITE.check("iou_values")
def iou_values(fx: Fixtures) -> Iterator[Case]:
    for label, confusion in random_confusions(fx):
        yield Case(label, call("per_class_iou", confusion), ref.per_class_iou(confusion), nan_aware)


@SUITE.check("iou_edge")
def iou_edge(fx: Fixtures) -> Iterator[Case]:
    for label, confusion in edge_confusions(fx):
        yield Case(label, call("per_class_iou", confusion), ref.per_class_iou(confusion), nan_aware)


@SUITE.check("miou_values")
def miou_values(fx: Fixtures) -> Iterator[Case]:
    for label, confusion in random_confusions(fx):
        yield Case(label, call("mean_iou", confusion), ref.mean_iou(confusion), nan_aware)


@SUITE.check("miou_edge")
def miou_edge(fx: Fixtures) -> Iterator[Case]:
    for label, confusion in edge_confusions(fx):
        yield Case(label, call("mean_iou", confusion), ref.mean_iou(confusion), nan_aware)


@SUITE.check("pixel_accuracy_values")
def pixel_accuracy_values(fx: Fixtures) -> Iterator[Case]:
    for label, confusion in [*random_confusions(fx), *edge_confusions(fx)]:
        yield Case(
            label, call("pixel_accuracy", confusion), ref.pixel_accuracy(confusion), nan_aware
        )


# --------------------------------------------------------------------------- instances and panoptic


def random_masks(fx: Fixtures, count: int, height: int, width: int, density: float) -> torch.Tensor:
    masks = fx.rand(count, height, width) < density
    masks[:, 0, 0] = True  # never empty
    return masks


def rectangle(
    height: int, width: int, top: int, left: int, bottom: int, right: int
) -> torch.Tensor:
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


@SUITE.check("mask_iou_values")
def mask_iou_values(fx: Fixtures) -> Iterator[Case]:
    for count_a, count_b, height, width, density in (
        (4, 5, 9, 11, 0.3),
        (1, 1, 6, 6, 0.5),
        (3, 2, 16, 13, 0.7),
    ):
        a, b = (
            random_masks(fx, count_a, height, width, density),
            random_masks(fx, count_b, height, width, density),
        )
        yield Case(
            f"random masks ({count_a}, {height}, {width}) and ({count_b}, {height}, {width})",
            call("mask_iou", a, b),
            ref.mask_iou(a, b),
        )
    boxes = [fx.randint(0, 6, 2).tolist() for _ in range(5)]
    rectangles = torch.stack(
        [
            rectangle(12, 12, y, x, y + 1 + fx.integer(1, 6), x + 1 + fx.integer(1, 6))
            for y, x in boxes
        ]
    )
    yield Case(
        "rectangles (5, 12, 12) against themselves",
        call("mask_iou", rectangles, rectangles),
        ref.mask_iou(rectangles, rectangles),
    )


@SUITE.check("mask_iou_empty")
def mask_iou_empty(fx: Fixtures) -> Iterator[Case]:
    a = random_masks(fx, 3, 7, 8, 0.4)
    a[:2] = False
    b = random_masks(fx, 3, 7, 8, 0.4)
    b[1] = False
    yield Case("some empty masks on both sides", call("mask_iou", a, b), ref.mask_iou(a, b))
    none = torch.zeros(0, 7, 8, dtype=torch.bool)
    yield Case(
        "no masks in the first set: (0, 3)", call("mask_iou", none, b), ref.mask_iou(none, b)
    )
    yield Case(
        "no masks in the second set: (3, 0)", call("mask_iou", a, none), ref.mask_iou(a, none)
    )


def segments(ids: torch.Tensor, labels: dict[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping masks (S, H, W) and classes (S,) of the segment-id map ``ids`` (-1: none)."""
    present = [i for i in ids.unique().tolist() if i >= 0]
    masks = (
        torch.stack([ids == i for i in present])
        if present
        else torch.zeros(0, *ids.shape, dtype=torch.bool)
    )
    return masks, torch.tensor([labels[i] for i in present], dtype=torch.int64)


def panoptic_scene(
    fx: Fixtures, height: int = 32, width: int = 40, count: int = 6, classes: int = 3
):
    """A true scene of rectangles and a prediction that shifts, relabels, drops and adds some.

    Redrawn until no same-class pair has IoU exactly 0.5 (the threshold is strict).
    """
    while True:
        truth, guess = torch.full((height, width), -1), torch.full((height, width), -1)
        true_labels, guess_labels = {}, {}
        for i in range(count):
            top, left = fx.integer(0, height - 8), fx.integer(0, width - 8)
            bottom, right = top + fx.integer(6, 14), left + fx.integer(6, 14)
            truth[top:bottom, left:right] = i
            true_labels[i] = fx.integer(1, classes)
            if fx.rand(1).item() < 0.8:  # detected, perhaps shifted and relabelled
                dy, dx = fx.integer(-2, 1), fx.integer(-1, 2)
                guess[max(top + dy, 0) : bottom + dy, max(left + dx, 0) : right + dx] = i
                relabel = fx.integer(1, classes - 1) if fx.rand(1).item() < 0.25 else 0
                guess_labels[i] = (true_labels[i] - 1 + relabel) % classes + 1  # another class
        for j in range(count, count + fx.integer(0, 2)):  # false positives
            top, left = fx.integer(0, height - 4), fx.integer(0, width - 4)
            guess[top : top + 4, left : left + 4] = j
            guess_labels[j] = fx.integer(1, classes)
        pred_masks, pred_labels = segments(guess, guess_labels)
        gt_masks, gt_labels = segments(truth, true_labels)
        iou = ref.mask_iou(pred_masks, gt_masks)
        if not bool(((iou == 0.5) & (pred_labels[:, None] == gt_labels[None, :])).any()):
            return pred_masks, pred_labels, gt_masks, gt_labels


def pq_case(label: str, scene: tuple) -> Case:
    return Case(label, call("panoptic_quality", *scene), ref.panoptic_quality(*scene), nan_aware)


@SUITE.check("pq_values")
def pq_values(fx: Fixtures) -> Iterator[Case]:
    for index, (count, classes) in enumerate(((6, 3), (8, 2), (5, 4), (10, 3))):
        yield pq_case(
            f"random scene {index + 1}: {count} true segments, {classes} classes",
            panoptic_scene(fx, count=count, classes=classes),
        )


@SUITE.check("pq_edge")
def pq_edge(fx: Fixtures) -> Iterator[Case]:
    _, _, gt_masks, gt_labels = panoptic_scene(fx)
    yield pq_case("perfect prediction", (gt_masks, gt_labels, gt_masks, gt_labels))
    extra = torch.zeros(1, *gt_masks.shape[1:], dtype=torch.bool)
    extra[0, -2:, -2:] = True
    masks = torch.cat([gt_masks & ~extra, extra])
    labels = torch.cat([gt_labels, torch.tensor([9])])
    yield pq_case(
        "perfect, plus a segment of a class only in the prediction",
        (masks, labels, gt_masks & ~extra, gt_labels),
    )
    none = torch.zeros(0, *gt_masks.shape[1:], dtype=torch.bool)
    empty_labels = torch.zeros(0, dtype=torch.int64)
    yield pq_case("nothing predicted", (none, empty_labels, gt_masks, gt_labels))
    yield pq_case("an empty scene (no segments at all)", (none, empty_labels, none, empty_labels))
