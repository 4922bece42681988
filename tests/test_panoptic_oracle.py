"""Does the panoptic-quality reference (solutions/segmentation.py) count void as panopticapi does?

The oracle below is written from ``panopticapi/evaluation.py`` (``pq_compute_single_core``
and ``PQStat.pq_average``), without crowd regions: segment-id maps in which id 0 is VOID
(unlabelled ground truth, or no prediction), NumPy ``np.unique`` over ``gt * OFFSET + pred``
for every intersection, matches at IoU > 0.5 with the prediction's void pixels taken out
of the union, and unmatched predictions that lie more than half on void not counted as
false positives. It shares no code with the reference, which works on boolean masks.
Where ``torchmetrics`` is installed, ``torchmetrics.detection.PanopticQuality`` is a
third opinion.
"""

from __future__ import annotations

import inspect
import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from solutions import segmentation as seg

VOID = 0
OFFSET = 1 << 20  # more than any segment id here


# --------------------------------------------------------------------------- the oracle


@dataclass
class CategoryStat:
    """panopticapi's ``PQStatCat``."""

    iou: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0


def oracle_image(
    pan_gt: np.ndarray,
    gt_segments: dict[int, int],
    pan_pred: np.ndarray,
    pred_segments: dict[int, int],
    stats: dict[int, CategoryStat],
) -> None:
    """Add one image to ``stats`` (category -> counts). Segment ids map to categories."""
    gt_area = dict(zip(*np.unique(pan_gt, return_counts=True)))
    pred_area = {}
    for label, count in zip(*np.unique(pan_pred, return_counts=True)):
        if label == VOID:
            continue
        assert label in pred_segments, "a predicted id without a category"
        pred_area[int(label)] = int(count)
    assert set(pred_area) == set(pred_segments), "a listed prediction without pixels"

    pairs = pan_gt.astype(np.int64) * OFFSET + pan_pred.astype(np.int64)
    gt_pred_map = {
        (int(label // OFFSET), int(label % OFFSET)): int(count)
        for label, count in zip(*np.unique(pairs, return_counts=True))
    }

    gt_matched, pred_matched = set(), set()
    for (gt_label, pred_label), intersection in gt_pred_map.items():
        if gt_label not in gt_segments or pred_label not in pred_segments:
            continue
        if gt_segments[gt_label] != pred_segments[pred_label]:
            continue
        union = (
            pred_area[pred_label]
            + int(gt_area[gt_label])
            - intersection
            - gt_pred_map.get((VOID, pred_label), 0)
        )
        iou = intersection / union
        if iou > 0.5:
            stats[gt_segments[gt_label]].tp += 1
            stats[gt_segments[gt_label]].iou += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)

    for gt_label, category in gt_segments.items():
        if gt_label not in gt_matched:
            stats[category].fn += 1

    for pred_label, category in pred_segments.items():
        if pred_label in pred_matched:
            continue
        if gt_pred_map.get((VOID, pred_label), 0) / pred_area[pred_label] > 0.5:
            continue  # mostly void: ignored
        stats[category].fp += 1


def oracle_average(stats: dict[int, CategoryStat]) -> dict[str, float]:
    """``PQStat.pq_average`` over the categories with TP + FP + FN > 0 (NaN where
    panopticapi would divide by zero)."""
    pq = sq = rq = 0.0
    n = 0
    for stat in stats.values():
        if stat.tp + stat.fp + stat.fn == 0:
            continue
        n += 1
        pq += stat.iou / (stat.tp + 0.5 * stat.fp + 0.5 * stat.fn)
        sq += stat.iou / stat.tp if stat.tp != 0 else 0
        rq += stat.tp / (stat.tp + 0.5 * stat.fp + 0.5 * stat.fn)
    if n == 0:
        return {"pq": math.nan, "sq": math.nan, "rq": math.nan}
    return {"pq": pq / n, "sq": sq / n, "rq": rq / n}


def oracle(images: list) -> tuple[dict[str, float], dict[int, CategoryStat]]:
    stats: dict[int, CategoryStat] = defaultdict(CategoryStat)
    for image in images:
        oracle_image(*image, stats)
    return oracle_average(stats), dict(stats)


# --------------------------------------------------------------------------- scenes


def random_scene(rng: np.random.Generator, cover: bool = False):
    """``(pan_gt, gt_segments, pan_pred, pred_segments)`` on a small grid.

    The truth: rectangles, sometimes on a background segment of category 0, with void
    pixels scattered and in bands. The prediction: most true segments again, shifted,
    some relabelled, drawn over the *unvoided* truth so that they run onto void, plus
    extra rectangles; ``cover`` gives every leftover pixel to one more segment (a
    prediction without void pixels, which torchmetrics needs to agree with panopticapi).
    """
    height, width = int(rng.integers(6, 14)), int(rng.integers(6, 14))
    classes = int(rng.integers(1, 5))
    full = np.zeros((height, width), np.int64)
    categories = {}
    if rng.random() < 0.5:
        full[:] = 1
        categories[1] = 0
    for segment in range(2, 2 + int(rng.integers(0, 7))):
        top, left = int(rng.integers(0, height)), int(rng.integers(0, width))
        full[top : top + int(rng.integers(1, 7)), left : left + int(rng.integers(1, 7))] = segment
        categories[segment] = int(rng.integers(0, classes))
    pan_gt = full.copy()
    pan_gt[rng.random((height, width)) < rng.choice([0.0, 0.15, 0.4])] = VOID
    if rng.random() < 0.5:  # a void band, like VOC's outlines
        column = int(rng.integers(0, width))
        pan_gt[:, column : column + int(rng.integers(1, 4))] = VOID
    gt_segments = {s: categories[s] for s in np.unique(pan_gt).tolist() if s != VOID}

    pan_pred = np.zeros((height, width), np.int64)
    pred_segments = {}
    next_id = 1
    for segment in rng.permutation(sorted(categories)).tolist():
        if rng.random() < 0.15:
            continue  # missed
        dy, dx = rng.integers(-2, 3, size=2).tolist()
        shifted = np.roll(full == segment, (dy, dx), axis=(0, 1))
        if not shifted.any():
            continue
        pan_pred[shifted] = next_id
        relabel = rng.random() < 0.2
        pred_segments[next_id] = (
            int(rng.integers(0, classes + 1)) if relabel else categories[segment]
        )
        next_id += 1
    for _ in range(int(rng.integers(0, 3))):
        top, left = int(rng.integers(0, height)), int(rng.integers(0, width))
        pan_pred[top : top + int(rng.integers(1, 5)), left : left + int(rng.integers(1, 5))] = (
            next_id
        )
        pred_segments[next_id] = int(rng.integers(0, classes + 1))
        next_id += 1
    if cover and (pan_pred == VOID).any():
        pan_pred[pan_pred == VOID] = next_id
        pred_segments[next_id] = int(rng.integers(0, classes + 1))
    present = set(np.unique(pan_pred).tolist())
    pred_segments = {s: c for s, c in pred_segments.items() if s in present}
    return pan_gt, gt_segments, pan_pred, pred_segments


def masks_of(pan: np.ndarray, segments: dict[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment-id map -> boolean masks (S, H, W) and their classes (S,), for the reference."""
    ids = sorted(segments)
    masks = torch.from_numpy(
        np.stack([pan == i for i in ids]) if ids else np.zeros((0, *pan.shape), bool)
    )
    return masks, torch.tensor([segments[i] for i in ids], dtype=torch.int64)


def reference_inputs(scene) -> tuple[torch.Tensor, ...]:
    pan_gt, gt_segments, pan_pred, pred_segments = scene
    return (*masks_of(pan_pred, pred_segments), *masks_of(pan_gt, gt_segments))


def void_blind(scene) -> dict[str, float]:
    """What the reference computed before void was handled: every pixel counts."""
    pan_gt, gt_segments, pan_pred, pred_segments = scene
    stats: dict[int, CategoryStat] = defaultdict(CategoryStat)
    relabelled_gt = np.where(pan_gt == VOID, OFFSET - 1, pan_gt)  # void as a segment of no class
    oracle_image(relabelled_gt, gt_segments, pan_pred, pred_segments, stats)
    return oracle_average(stats)  # every segment counts, so every class with one is averaged


def assert_same(actual: dict[str, float], expected: dict[str, float]) -> None:
    for key in ("pq", "sq", "rq"):
        if math.isnan(expected[key]):
            assert math.isnan(actual[key]), (key, actual, expected)
        else:
            assert actual[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-12), (
                key,
                actual,
                expected,
            )


def nonzero_counts(statistics: dict) -> dict[int, tuple]:
    return {c: s for c, s in statistics.items() if s[0] + s[1] + s[2] or s[3]}


SCENES = 400


# --------------------------------------------------------------------------- reference = oracle


def test_reference_equals_the_oracle_on_random_scenes_with_void():
    rng = np.random.default_rng(0)
    blind_differs, largest_gap = 0, 0.0
    for _ in range(SCENES):
        scene = random_scene(rng)
        expected, stats = oracle([scene])
        inputs = reference_inputs(scene)
        assert_same(seg.panoptic_quality(*inputs), expected)
        counts = nonzero_counts(seg.panoptic_statistics(*inputs))
        assert counts.keys() == {c for c, s in stats.items() if s.tp + s.fp + s.fn}
        for category, (tp, fp, fn, iou_sum) in counts.items():
            stat = stats[category]
            assert (tp, fp, fn) == (stat.tp, stat.fp, stat.fn)
            assert iou_sum == pytest.approx(stat.iou, rel=1e-12, abs=1e-12)
        blind = void_blind(scene)
        gap = abs(blind["pq"] - expected["pq"])
        if not math.isnan(gap) and gap > 1e-9:
            blind_differs += 1
            largest_gap = max(largest_gap, gap)
    # the scenes exercise void: ignoring it changes PQ often and by a lot
    assert blind_differs > SCENES // 4 and largest_gap > 0.3


def test_the_scenes_reach_every_void_rule_and_the_ties():
    """Ignored predictions, matches that exist only because void left the union, and
    exact ties (IoU = 1/2, void share = 1/2), so the comparison above is not vacuous."""
    rng = np.random.default_rng(0)
    seen = defaultdict(int)
    for _ in range(SCENES):
        pan_gt, gt_segments, pan_pred, pred_segments = random_scene(rng)
        for pred_id in pred_segments:
            mask = pan_pred == pred_id
            void = int((mask & (pan_gt == VOID)).sum())
            seen["ignored"] += 2 * void > mask.sum()
            seen["half void"] += 2 * void == mask.sum() and void > 0
            for gt_id, category in gt_segments.items():
                if category != pred_segments[pred_id]:
                    continue
                truth = pan_gt == gt_id
                inter = int((mask & truth).sum())
                union = int((mask | truth).sum())
                seen["match thanks to void"] += 2 * inter > union - void and 2 * inter <= union
                seen["IoU exactly 1/2"] += inter > 0 and 2 * inter == union - void
    assert all(seen[key] >= 5 for key in ("ignored", "half void", "match thanks to void")), seen
    assert seen["IoU exactly 1/2"] >= 1, seen


def test_statistics_accumulate_over_images_like_pqstat():
    rng = np.random.default_rng(1)
    for _ in range(40):
        scenes = [random_scene(rng) for _ in range(int(rng.integers(1, 6)))]
        expected, _ = oracle(scenes)
        total = {}
        for scene in scenes:
            total = seg.add_statistics(total, seg.panoptic_statistics(*reference_inputs(scene)))
        assert_same(seg.panoptic_average(total), expected)


def test_accumulating_differs_from_averaging_per_image():
    rng = np.random.default_rng(2)
    scenes = [random_scene(rng) for _ in range(8)]
    accumulated, _ = oracle(scenes)
    per_image = [oracle([scene])[0]["pq"] for scene in scenes]
    mean = float(np.nanmean(per_image))
    assert abs(mean - accumulated["pq"]) > 1e-3


# --------------------------------------------------------------------------- edge cases


def scene_with(pan_gt, gt_segments, pan_pred, pred_segments):
    return np.asarray(pan_gt), gt_segments, np.asarray(pan_pred), pred_segments


def hand_scene(kind: str):
    """Small named scenes on a 4 x 6 grid (ids: 0 void / no prediction)."""
    gt = np.zeros((4, 6), np.int64)
    gt[:, :3] = 1  # category 1, 12 pixels; columns 3-5 void
    if kind == "no predicted segment":
        return scene_with(gt, {1: 1}, np.zeros_like(gt), {})
    if kind == "no true segment":
        pred = np.zeros_like(gt)
        pred[:2, :2], pred[2:, 4:] = 1, 2
        return scene_with(np.zeros_like(gt), {}, pred, {1: 1, 2: 2})
    if kind == "no segment at all":
        return scene_with(np.zeros_like(gt), {}, np.zeros_like(gt), {})
    pred = np.zeros_like(gt)
    pred[:, :4] = 1  # category 1: 4 of its 16 pixels are void
    if kind == "extra segment half on void":
        pred[:2, 2:4] = 2  # 2 labelled, 2 void pixels: exactly half, still a FP
    elif kind == "extra segment mostly on void":
        pred[:2, 2:5] = 2  # 2 labelled, 4 void pixels: ignored
    return scene_with(gt, {1: 1}, pred, {1: 1, 2: 2} if 2 in pred else {1: 1})


HAND = {
    "no predicted segment": {"pq": 0.0, "sq": 0.0, "rq": 0.0},
    "no true segment": {"pq": math.nan, "sq": math.nan, "rq": math.nan},
    "no segment at all": {"pq": math.nan, "sq": math.nan, "rq": math.nan},
    # IoU 12 / (16 - 4) = 1: the void columns are not in the union
    "prediction runs onto void": {"pq": 1.0, "sq": 1.0, "rq": 1.0},
    # class 1: IoU 10 / 12 -> TP; class 2: one FP (PQ 0); averaged over 2 classes
    "extra segment half on void": {"pq": 5 / 12, "sq": 5 / 12, "rq": 0.5},
    # class 2 has no TP, FP or FN: it is left out of the average
    "extra segment mostly on void": {"pq": 10 / 12, "sq": 10 / 12, "rq": 1.0},
}


@pytest.mark.parametrize("kind", list(HAND))
def test_hand_worked_void_and_zero_segment_cases(kind):
    scene = hand_scene(kind)
    expected, _ = oracle([scene])
    assert_same(expected, HAND[kind])  # the oracle itself, by hand
    assert_same(seg.panoptic_quality(*reference_inputs(scene)), HAND[kind])


def test_zero_segments_on_either_side_of_random_scenes():
    rng = np.random.default_rng(3)
    for _ in range(50):
        pan_gt, gt_segments, pan_pred, pred_segments = random_scene(rng)
        for scene in (
            (pan_gt, gt_segments, np.zeros_like(pan_pred), {}),
            (np.zeros_like(pan_gt), {}, pan_pred, pred_segments),
        ):
            assert_same(seg.panoptic_quality(*reference_inputs(scene)), oracle([scene])[0])


# --------------------------------------------------------------------------- torchmetrics


def category_map(pan: np.ndarray, segments: dict[int, int], default: int) -> np.ndarray:
    """The category of every pixel of a segment-id map (``default`` where no segment is)."""
    out = np.full_like(pan, default)
    for segment, category in segments.items():
        out[pan == segment] = category
    return out


def torchmetrics_quality(scenes: list) -> dict[str, float]:
    """``torchmetrics.detection.PanopticQuality`` accumulated over ``scenes`` (one update
    each): every category a thing, colours (category, segment id), ground-truth void as
    an unknown category, which torchmetrics treats as void."""
    detection = pytest.importorskip("torchmetrics.detection")
    categories = {c for scene in scenes for c in (*scene[1].values(), *scene[3].values())}
    unknown = max(categories, default=0) + 100
    options = {}
    if "return_sq_and_rq" in inspect.signature(detection.PanopticQuality).parameters:
        options["return_sq_and_rq"] = True
    metric = detection.PanopticQuality(things=categories or {0}, stuffs=set(), **options)
    for pan_gt, gt_segments, pan_pred, pred_segments in scenes:
        gt_category = category_map(pan_gt, gt_segments, unknown)
        pred_category = category_map(pan_pred, pred_segments, unknown)
        target = torch.from_numpy(np.stack([gt_category, pan_gt], axis=-1))[None]
        preds = torch.from_numpy(np.stack([pred_category, pan_pred], axis=-1))[None]
        metric.update(preds, target)
    result = metric.compute().double().flatten().tolist()
    if len(result) == 3:
        return dict(zip(("pq", "sq", "rq"), result))
    return {"pq": result[0]}


def test_reference_agrees_with_torchmetrics_on_covering_predictions():
    """One image at a time and accumulated over a few (torchmetrics' IoUs are float32)."""
    pytest.importorskip("torchmetrics.detection")
    rng = np.random.default_rng(4)
    for _ in range(60):
        scenes = [random_scene(rng, cover=True) for _ in range(int(rng.integers(1, 4)))]
        expected = torchmetrics_quality(scenes)
        total = {}
        for scene in scenes:
            total = seg.add_statistics(total, seg.panoptic_statistics(*reference_inputs(scene)))
        mine = seg.panoptic_average(total)
        for key, value in expected.items():
            if math.isnan(mine[key]):
                assert math.isnan(value), (key, mine, expected)
            else:
                assert mine[key] == pytest.approx(value, rel=1e-6, abs=1e-6), (key, mine, expected)
