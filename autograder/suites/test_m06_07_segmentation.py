"""Hidden tests for m06_07_segmentation: torchvision's FCNHead / ASPPConv / ASPP and the
float64 metric references in solutions/segmentation.py, on seeded label maps and masks.

Modules get the same seeded float32 weights as the torchvision reference (loaded in
registration order with ``cnnkit.load_ordered``); references run in float64. Metric
inputs are seeded label maps with void pixels, classes absent from both prediction and
target (NaN IoU), and the edge cases (every pixel void, one class only, a class only in
the prediction, empty masks, empty scenes). Panoptic scenes have void ground truth (pixels
in no true segment, as in panopticapi): predictions run onto it, lie mostly or exactly
half on it. NaN must be NaN exactly where the reference has it. Metrics are compared with rtol 1e-5, so a student computing in float32 keeps
every point.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.segmentation.deeplabv3 import ASPP, ASPPConv
from torchvision.models.segmentation.fcn import FCNHead

from autograder.fixtures import loaded, number
from solutions import segmentation as ref

# --------------------------------------------------------------------------- comparisons


def close_nan(check, actual, expected: torch.Tensor, what: str = "output") -> None:
    """Tensor comparison where NaN must be NaN exactly where the reference has it."""
    if type(actual) is not torch.Tensor or tuple(actual.shape) != tuple(expected.shape):
        check.close(actual, expected, what)  # the type or shape message
    if not actual.is_floating_point():
        check.fail(f"{what} has dtype {actual.dtype}, expected a floating-point tensor")
    got, want = torch.isnan(actual), torch.isnan(expected)
    extra = int((got.cpu() & ~want).sum())
    missing = int((want & ~got.cpu()).sum())
    if extra or missing:
        check.fail(
            f"{what}: {extra} NaN entries where a number is expected, "
            f"{missing} numbers where NaN is expected"
        )
    check.close(actual[~got], expected[~want], what)


def close_metric(check, actual, expected) -> None:
    """A float (NaN must be NaN) or a dict of floats."""
    check.close(number(actual), expected)


# --------------------------------------------------------------------------- modules


def run_module(student, inputs, reference, cls: str, build, init_args, shape, train=False):
    """``(handle, student output, float64 reference output)`` with the same seeded weights;
    ``build()`` makes the torchvision module."""
    state = inputs.module_state(build())
    x = inputs.randn(*shape).float()

    def expected():
        with torch.no_grad():
            return loaded(build(), state, train)(x.double())

    expected = reference(expected)
    net = getattr(student, cls)(*init_args)
    student.lib("cnnkit").load_ordered(net, state)
    net.to(student.device)
    net.train(train)
    return net, net(x), expected


def parameter_count(net) -> int:
    return sum(p.numel() for p in list(net.parameters()))


FCN_HEADS = [(32, 21, (2, 32, 9, 11)), (16, 5, (1, 16, 7, 13)), (8, 3, (3, 8, 5, 5))]


@pytest.mark.parametrize(
    "c_in, k, shape",
    FCN_HEADS,
    ids=[f"FCNHead({c}, {k}), eval mode, features {s}" for c, k, s in FCN_HEADS],
)
def test_fcn_head_values(student, check, inputs, reference, c_in, k, shape):
    _, got, expected = run_module(
        student, inputs, reference, "FCNHead", partial(FCNHead, c_in, k), (c_in, k), shape
    )
    check.close(got, expected)


ATROUS_SIZE = [(4, 6, 1, (2, 4, 11, 14)), (3, 5, 2, (1, 3, 9, 9)), (2, 4, 3, (2, 2, 7, 10))]
ATROUS_SIZE += [(4, 4, 6, (1, 4, 5, 6))]


@pytest.mark.parametrize(
    "c_in, c_out, rate, shape",
    ATROUS_SIZE,
    ids=[f"AtrousConv({i}, {o}, rate={r}), x {s}" for i, o, r, s in ATROUS_SIZE],
)
def test_atrous_same_size(student, check, inputs, reference, c_in, c_out, rate, shape):
    build = partial(ASPPConv, c_in, c_out, rate)
    net, got, expected = run_module(
        student, inputs, reference, "AtrousConv", build, (c_in, c_out, rate), shape
    )
    check.close(got, expected)
    check.equal(parameter_count(net), 9 * c_in * c_out + 2 * c_out, "parameter count")


ATROUS_VALUES = [
    (4, 6, 2, (2, 4, 11, 14), False),
    (3, 5, 3, (1, 3, 9, 9), False),
    (2, 4, 5, (2, 2, 7, 10), False),
    (4, 6, 2, (4, 4, 8, 9), True),
]


@pytest.mark.parametrize(
    "c_in, c_out, rate, shape, train",
    ATROUS_VALUES,
    ids=[
        f"AtrousConv({i}, {o}, rate={r}), "
        + ("train mode (batch statistics)" if t else "eval mode")
        + f", x {s}"
        for i, o, r, s, t in ATROUS_VALUES
    ],
)
def test_atrous_values(student, check, inputs, reference, c_in, c_out, rate, shape, train):
    build = partial(ASPPConv, c_in, c_out, rate)
    _, got, expected = run_module(
        student, inputs, reference, "AtrousConv", build, (c_in, c_out, rate), shape, train
    )
    check.close(got, expected)


# Structure: rate 1, or 1x1 features where every atrous tap but the centre falls on
# padding, so the layout (branches, pooling, projection) is graded, not the rates.
ASPP_STRUCTURE = [
    (8, (1,), 4, (2, 8, 9, 11)),
    (12, (1,), 12, (1, 12, 7, 5)),
    (16, (3, 5), 8, (3, 16, 1, 1)),
    (64, (6, 12, 18), 32, (2, 64, 1, 1)),
]


@pytest.mark.parametrize(
    "c_in, rates, c_out, shape",
    ASPP_STRUCTURE,
    ids=[f"ASPP({i}, {r}, {o}), eval mode, x {s}" for i, r, o, s in ASPP_STRUCTURE],
)
def test_aspp_structure(student, check, inputs, reference, c_in, rates, c_out, shape):
    build = partial(ASPP, c_in, rates, c_out)
    net, got, expected = run_module(
        student, inputs, reference, "ASPP", build, (c_in, rates, c_out), shape
    )
    count = reference(lambda: sum(p.numel() for p in build().parameters()))
    check.close(got, expected)
    check.equal(parameter_count(net), count, "parameter count")


ASPP_VALUES = [
    (16, (1, 2, 3), 8, (2, 16, 9, 12)),
    (8, (6, 12, 18), 4, (1, 8, 13, 13)),
    (12, (2,), 6, (3, 12, 5, 7)),
]


@pytest.mark.parametrize(
    "c_in, rates, c_out, shape",
    ASPP_VALUES,
    ids=[f"ASPP({i}, {r}, {o}), eval mode, x {s}" for i, r, o, s in ASPP_VALUES],
)
def test_aspp_values(student, check, inputs, reference, c_in, rates, c_out, shape):
    build = partial(ASPP, c_in, rates, c_out)
    _, got, expected = run_module(
        student, inputs, reference, "ASPP", build, (c_in, rates, c_out), shape
    )
    check.close(got, expected)


# --------------------------------------------------------------------------- label maps


def label_maps(inputs, shape: tuple, classes: int, void: float = 0.1, agree: float = 0.6):
    """Seeded ``(pred, target)``: target in [0, classes) with ``void`` of it 255; pred agrees
    with the target on about ``agree`` of the pixels and is a random class elsewhere."""
    target = inputs.randint(0, classes, *shape)
    target[inputs.rand(*shape) < void] = 255
    noise = inputs.randint(0, classes, *shape)
    pred = torch.where((inputs.rand(*shape) < agree) & (target != 255), target, noise)
    return pred, target


RANDOM_MAPS = [  # (shape, K, classes that occur)
    ((2, 13, 17), 21, 21),
    ((4, 8, 8), 5, 5),
    ((37,), 3, 3),
    ((2, 9, 9), 8, 6),  # classes 6 and 7 absent: NaN
    ((1, 20, 20), 21, 12),
]
RANDOM_IDS = [f"label maps {s}, K={k}, {n} classes occur" for s, k, n in RANDOM_MAPS]


def random_confusion(inputs, shape, k, occurring) -> torch.Tensor:
    return ref.confusion_matrix(*label_maps(inputs, shape, occurring), k)


def every_pixel_void(inputs):
    pred, target = label_maps(inputs, (2, 6, 7), 4)
    return pred, torch.full_like(target, 255)


def one_class_only(inputs):
    same = torch.full((2, 5, 5), 2)
    return same, same


def class_only_in_prediction(inputs):
    pred, target = label_maps(inputs, (2, 6, 7), 4)
    only_predicted = torch.where(inputs.rand(2, 6, 7) < 0.3, torch.tensor(3), pred.clamp(max=1))
    return only_predicted, target.clamp(max=1)  # class 2 absent, class 3 never true


def class_only_in_target(inputs):
    _, target = label_maps(inputs, (2, 6, 7), 4)
    return torch.where(target == 2, torch.tensor(0), target), target  # class 2 never predicted


EDGE_MAPS = {
    "every pixel void": every_pixel_void,
    "one class only": one_class_only,
    "a class only in the prediction": class_only_in_prediction,
    "a class only in the target": class_only_in_target,
}
EDGE_CASES = [pytest.param(build, id=label) for label, build in EDGE_MAPS.items()]


def edge_confusion(inputs, build) -> torch.Tensor:
    return ref.confusion_matrix(*build(inputs), 4)


# --------------------------------------------------------------------------- confusion matrix


@pytest.mark.parametrize(
    "shape, k, occurring",
    RANDOM_MAPS,
    ids=[f"label maps {s}, K={k}, about 10% void" for s, k, _ in RANDOM_MAPS],
)
def test_confusion_values(student, check, inputs, reference, shape, k, occurring):
    pred, target = label_maps(inputs, shape, occurring)
    expected = reference(lambda: ref.confusion_matrix(pred, target, k))
    check.close(student.confusion_matrix(pred, target, k), expected)


def ignore_class_zero(inputs):
    pred, target = label_maps(inputs, (2, 6, 7), 4)
    return pred, target.clamp(max=3)  # no 255: this case leaves out class 0 instead


CONFUSION_EDGE = [
    pytest.param(every_pixel_void, {}, id="every pixel void"),
    pytest.param(one_class_only, {}, id="one class only"),
    pytest.param(class_only_in_prediction, {}, id="a class only in the prediction"),
    pytest.param(ignore_class_zero, {"ignore_index": 0}, id="ignore_index=0"),
]


@pytest.mark.parametrize("build, options", CONFUSION_EDGE)
def test_confusion_edge(student, check, inputs, reference, build, options):
    pred, target = build(inputs)
    expected = reference(lambda: ref.confusion_matrix(pred, target, 4, **options))
    check.close(student.confusion_matrix(pred, target, 4, **options), expected)


# --------------------------------------------------------------------------- IoU and accuracy


@pytest.mark.parametrize("shape, k, occurring", RANDOM_MAPS, ids=RANDOM_IDS)
def test_iou_values(student, check, inputs, reference, shape, k, occurring):
    confusion = random_confusion(inputs, shape, k, occurring)
    expected = reference(lambda: ref.per_class_iou(confusion))
    close_nan(check, student.per_class_iou(confusion), expected)


@pytest.mark.parametrize("build", EDGE_CASES)
def test_iou_edge(student, check, inputs, reference, build):
    confusion = edge_confusion(inputs, build)
    expected = reference(lambda: ref.per_class_iou(confusion))
    close_nan(check, student.per_class_iou(confusion), expected)


@pytest.mark.parametrize("shape, k, occurring", RANDOM_MAPS, ids=RANDOM_IDS)
def test_miou_values(student, check, inputs, reference, shape, k, occurring):
    confusion = random_confusion(inputs, shape, k, occurring)
    expected = reference(lambda: ref.mean_iou(confusion))
    close_metric(check, student.mean_iou(confusion), expected)


@pytest.mark.parametrize("build", EDGE_CASES)
def test_miou_edge(student, check, inputs, reference, build):
    confusion = edge_confusion(inputs, build)
    expected = reference(lambda: ref.mean_iou(confusion))
    close_metric(check, student.mean_iou(confusion), expected)


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=label) for c, label in zip(RANDOM_MAPS, RANDOM_IDS)] + EDGE_CASES,
)
def test_pixel_accuracy_values(student, check, inputs, reference, case):
    confusion = edge_confusion(inputs, case) if callable(case) else random_confusion(inputs, *case)
    expected = reference(lambda: ref.pixel_accuracy(confusion))
    close_metric(check, student.pixel_accuracy(confusion), expected)


# --------------------------------------------------------------------------- mask IoU


def random_masks(inputs, count: int, height: int, width: int, density: float) -> torch.Tensor:
    masks = inputs.rand(count, height, width) < density
    masks[:, 0, 0] = True  # never empty
    return masks


def rectangle(height: int, width: int, top: int, left: int, bottom: int, right: int):
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


MASK_SETS = [(4, 5, 9, 11, 0.3), (1, 1, 6, 6, 0.5), (3, 2, 16, 13, 0.7)]


@pytest.mark.parametrize(
    "sizes",
    [
        pytest.param(s, id=f"random masks ({s[0]}, {s[2]}, {s[3]}) and ({s[1]}, {s[2]}, {s[3]})")
        for s in MASK_SETS
    ]
    + [pytest.param(None, id="rectangles (5, 12, 12) against themselves")],
)
def test_mask_iou_values(student, check, inputs, reference, sizes):
    if sizes is None:
        corners = [inputs.randint(0, 6, 2).tolist() for _ in range(5)]
        a = b = torch.stack(
            [
                rectangle(12, 12, y, x, y + 1 + inputs.integer(1, 6), x + 1 + inputs.integer(1, 6))
                for y, x in corners
            ]
        )
    else:
        count_a, count_b, height, width, density = sizes
        a = random_masks(inputs, count_a, height, width, density)
        b = random_masks(inputs, count_b, height, width, density)
    expected = reference(lambda: ref.mask_iou(a, b))
    check.close(student.mask_iou(a, b), expected)


def some_empty(inputs):
    a = random_masks(inputs, 3, 7, 8, 0.4)
    a[:2] = False
    b = random_masks(inputs, 3, 7, 8, 0.4)
    b[1] = False
    return a, b


def none_first(inputs):
    return torch.zeros(0, 7, 8, dtype=torch.bool), random_masks(inputs, 3, 7, 8, 0.4)


def none_second(inputs):
    return random_masks(inputs, 3, 7, 8, 0.4), torch.zeros(0, 7, 8, dtype=torch.bool)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(some_empty, id="some empty masks on both sides"),
        pytest.param(none_first, id="no masks in the first set: (0, 3)"),
        pytest.param(none_second, id="no masks in the second set: (3, 0)"),
    ],
)
def test_mask_iou_empty(student, check, inputs, reference, build):
    a, b = build(inputs)
    expected = reference(lambda: ref.mask_iou(a, b))
    check.close(student.mask_iou(a, b), expected)


# --------------------------------------------------------------------------- panoptic quality


def segments(ids: torch.Tensor, labels: dict[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping masks (S, H, W) and classes (S,) of the segment-id map ``ids`` (-1: none)."""
    present = [i for i in ids.unique().tolist() if i >= 0]
    masks = (
        torch.stack([ids == i for i in present])
        if present
        else torch.zeros(0, *ids.shape, dtype=torch.bool)
    )
    return masks, torch.tensor([labels[i] for i in present], dtype=torch.int64)


def outlines(ids: torch.Tensor) -> torch.Tensor:
    """Pixels whose right or lower neighbour belongs to another segment (VOC-like outlines)."""
    edge = torch.zeros_like(ids, dtype=torch.bool)
    edge[:, :-1] |= ids[:, 1:] != ids[:, :-1]
    edge[:-1, :] |= ids[1:, :] != ids[:-1, :]
    return edge


def has_ties(pred_masks, pred_labels, gt_masks, gt_labels) -> bool:
    """A same-class pair with IoU exactly 0.5 (void left out of the union), or a predicted
    segment exactly half on void: the random scenes avoid both strict thresholds."""
    void = ~gt_masks.any(dim=0)
    iou = ref.mask_iou(pred_masks & ~void, gt_masks)
    tie = (iou == 0.5) & (pred_labels[:, None] == gt_labels[None, :])
    half = 2 * (pred_masks & void).flatten(1).sum(dim=1) == pred_masks.flatten(1).sum(dim=1)
    return bool(tie.any() or half.any())


def mostly_void(pred_masks, pred_labels, gt_masks, gt_labels) -> bool:
    """Some predicted segment has more than half of its pixels on void."""
    void = ~gt_masks.any(dim=0)
    return bool(
        (2 * (pred_masks & void).flatten(1).sum(dim=1) > pred_masks.flatten(1).sum(dim=1)).any()
    )


def panoptic_scene(
    inputs,
    height: int = 32,
    width: int = 40,
    count: int = 6,
    classes: int = 3,
    background: bool = False,
):
    """A true scene of rectangles and a prediction that shifts, relabels, drops and adds some.

    Without ``background`` every true pixel outside the rectangles is void. With it, a
    class-0 "stuff" segment covers the rest except VOC-like void outlines between segments
    and a void patch, and the prediction covers every pixel (its background is what is left).
    Predictions are drawn over the rectangles before the void is cut out, so they run onto
    void, and one false positive sits on or near the void patch. Redrawn until some
    predicted segment lies mostly on void and :func:`has_ties` is false.
    """
    background_id = count + 100
    while True:
        truth, guess = torch.full((height, width), -1), torch.full((height, width), -1)
        true_labels, guess_labels = {background_id: 0}, {background_id: 0}
        if background:
            truth[:] = background_id
        for i in range(count):
            top, left = inputs.integer(0, height - 8), inputs.integer(0, width - 8)
            bottom, right = top + inputs.integer(6, 14), left + inputs.integer(6, 14)
            truth[top:bottom, left:right] = i
            true_labels[i] = inputs.integer(1, classes)
            if inputs.rand(1).item() < 0.8:  # detected, perhaps shifted and relabelled
                dy, dx = inputs.integer(-2, 1), inputs.integer(-1, 2)
                guess[max(top + dy, 0) : bottom + dy, max(left + dx, 0) : right + dx] = i
                relabel = inputs.integer(1, classes - 1) if inputs.rand(1).item() < 0.25 else 0
                guess_labels[i] = (true_labels[i] - 1 + relabel) % classes + 1  # another class
        for j in range(count, count + inputs.integer(0, 2)):  # false positives
            top, left = inputs.integer(0, height - 4), inputs.integer(0, width - 4)
            guess[top : top + 4, left : left + 4] = j
            guess_labels[j] = inputs.integer(1, classes)
        if background:
            truth[outlines(truth)] = -1
            top, left = inputs.integer(0, height - 6), inputs.integer(0, width - 8)
            truth[top : top + 6, left : left + 8] = -1  # a void patch
            top, left = top + inputs.integer(-2, 4), left + inputs.integer(-2, 6)
            guess[max(top, 0) : top + 4, max(left, 0) : left + 4] = count + 3  # on or near it
            guess_labels[count + 3] = inputs.integer(1, classes)
            guess[guess == -1] = background_id
        scene = (*segments(guess, guess_labels), *segments(truth, true_labels))
        if mostly_void(*scene) and not has_ties(*scene):
            return scene


def check_pq(student, check, reference, scene: tuple) -> None:
    expected = reference(lambda: ref.panoptic_quality(*scene))
    close_metric(check, student.panoptic_quality(*scene), expected)


PQ_SCENES = [(6, 3, False), (8, 2, False), (5, 4, True), (10, 3, True)]


@pytest.mark.parametrize(
    "count, classes, background",
    PQ_SCENES,
    ids=[
        f"random scene {i + 1}: {n} true segments, {k} classes, "
        + ("a background segment with void outlines and a void patch" if b else "void around them")
        for i, (n, k, b) in enumerate(PQ_SCENES)
    ],
)
def test_pq_values(student, check, inputs, reference, count, classes, background):
    scene = panoptic_scene(inputs, count=count, classes=classes, background=background)
    check_pq(student, check, reference, scene)


def perfect(gt_masks, gt_labels):
    return gt_masks, gt_labels, gt_masks, gt_labels


def corner_segment(gt_masks) -> torch.Tensor:
    extra = torch.zeros(1, *gt_masks.shape[1:], dtype=torch.bool)
    extra[0, -2:, -2:] = True
    return extra


def plus_unknown_class_on_void(gt_masks, gt_labels):
    extra = corner_segment(gt_masks)  # the true segments give up the corner: it is void
    masks = torch.cat([gt_masks & ~extra, extra])
    labels = torch.cat([gt_labels, torch.tensor([9])])
    return masks, labels, gt_masks & ~extra, gt_labels


def plus_unknown_class_on_labelled_pixels(gt_masks, gt_labels):
    largest = gt_masks[gt_masks.flatten(1).sum(dim=1).argmax()]
    row, column = divmod(largest.flatten().nonzero()[0].item(), gt_masks.shape[2])
    extra = torch.zeros(1, *gt_masks.shape[1:], dtype=torch.bool)
    extra[0, row : row + 2, column : column + 2] = True
    extra &= largest  # 1 to 4 labelled pixels taken from the largest true segment
    masks = torch.cat([gt_masks & ~extra, extra])
    return masks, torch.cat([gt_labels, torch.tensor([9])]), gt_masks, gt_labels


def running_onto_void(gt_masks, gt_labels):
    void = ~gt_masks.any(dim=0)
    taken = gt_masks.any(dim=0)
    grown = []
    for mask in gt_masks:  # each prediction takes the void pixels next to it that are free
        near = F.max_pool2d(mask[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
        extra = near & void & ~taken
        taken = taken | extra
        grown.append(mask | extra)
    return torch.stack(grown), gt_labels, gt_masks, gt_labels


def half_on_void(gt_masks, gt_labels):
    """Class 1 on columns 0-2 of a 4 x 6 image, void elsewhere; a class-2 prediction of 2
    labelled and 2 void pixels (exactly half: still a false positive)."""
    truth = torch.zeros(1, 4, 6, dtype=torch.bool)
    truth[0, :, :3] = True
    extra = torch.zeros(1, 4, 6, dtype=torch.bool)
    extra[0, :2, 2:4] = True
    first = torch.zeros(1, 4, 6, dtype=torch.bool)
    first[0, :, :4] = True
    masks = torch.cat([first & ~extra, extra])
    return masks, torch.tensor([1, 2]), truth, torch.tensor([1])


def nothing_predicted(gt_masks, gt_labels):
    none = torch.zeros(0, *gt_masks.shape[1:], dtype=torch.bool)
    return none, torch.zeros(0, dtype=torch.int64), gt_masks, gt_labels


def nothing_true(gt_masks, gt_labels):
    none = torch.zeros(0, *gt_masks.shape[1:], dtype=torch.bool)
    return gt_masks, gt_labels, none, torch.zeros(0, dtype=torch.int64)


def empty_scene(gt_masks, gt_labels):
    none = torch.zeros(0, *gt_masks.shape[1:], dtype=torch.bool)
    empty_labels = torch.zeros(0, dtype=torch.int64)
    return none, empty_labels, none, empty_labels


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(perfect, id="perfect prediction"),
        pytest.param(
            plus_unknown_class_on_labelled_pixels,
            id="perfect, plus a segment of a class only in the prediction, on labelled pixels",
        ),
        pytest.param(
            plus_unknown_class_on_void,
            id="perfect, plus a segment of a class only in the prediction, entirely on void",
        ),
        pytest.param(running_onto_void, id="perfect, but the predictions run onto void"),
        pytest.param(half_on_void, id="a false positive exactly half on void"),
        pytest.param(nothing_predicted, id="nothing predicted"),
        pytest.param(nothing_true, id="no true segment: the whole image is void"),
        pytest.param(empty_scene, id="an empty scene (no segments at all)"),
    ],
)
def test_pq_edge(student, check, inputs, reference, build):
    _, _, gt_masks, gt_labels = panoptic_scene(inputs)
    check_pq(student, check, reference, build(gt_masks, gt_labels))
