"""Hidden tests for c12_detection (Lab 4 mini-YOLO): boxes, IoU, NMS, YOLO targets, decoding,
the YOLO loss and COCO average precision.

- ``box_convert``, ``box_iou`` and ``nms`` against ``torchvision.ops`` in float64, on
  float32 boxes (a student computing in float32 keeps every point). NMS inputs have
  distinct scores and IoUs at least 1e-4 away from the threshold, except in the tie check,
  whose IoUs equal the threshold exactly in float32 as in float64.
- ``encode_targets``, ``decode_predictions`` and ``yolo_loss`` against the float64
  references of ``solutions/detection.py`` (the stated layout and conventions).
- ``average_precision`` and ``mean_average_precision`` against the reference, which
  tests/test_solutions_detection.py checks against pycocotools. Scenes have distinct
  scores, IoUs at least 1e-4 away from every threshold used, and a total number of
  ground-truth boxes prime to 10, so that no recall other than 0 and 1 falls on one of
  COCO's 101 recall points (where its ``np.linspace`` rounding would decide).
"""

from __future__ import annotations

import pytest
import torch

from autograder.fixtures import number
from solutions import detection as ref

COCO_THRESHOLDS = [float(t) for t in ref.COCO_THRESHOLDS]

# --------------------------------------------------------------------------- inputs


def random_boxes(inputs, n: int, spread: float = 0.8, low: float = 0.05, high: float = 0.4):
    """``n`` xyxy boxes as fractions of the image, float64: centres in the middle ``spread``."""
    centres = inputs.rand(n, 2) * spread + (1 - spread) / 2
    sizes = inputs.rand(n, 2) * (high - low) + low
    return torch.cat([centres - sizes / 2, centres + sizes / 2], dim=1)


def jittered(inputs, boxes: torch.Tensor, amount: float) -> torch.Tensor:
    """Each box moved and resized by about ``amount`` of its size."""
    if len(boxes) == 0:
        return boxes.clone()
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    moved = boxes + amount * size * inputs.randn(*boxes.shape)
    x1, x2 = torch.minimum(moved[:, 0], moved[:, 2]), torch.maximum(moved[:, 0], moved[:, 2])
    y1, y2 = torch.minimum(moved[:, 1], moved[:, 3]), torch.maximum(moved[:, 1], moved[:, 3])
    return torch.stack([x1, y1, x2 + 1e-3, y2 + 1e-3], dim=1)


def distinct_scores(inputs, n: int) -> torch.Tensor:
    """float32 scores in (0, 1), all different."""
    while True:
        scores = inputs.rand(n).float()
        if len(set(scores.tolist())) == n:
            return scores


def away_from(iou: torch.Tensor, thresholds: list[float], margin: float = 1e-4) -> bool:
    return all(bool(((iou - t).abs() > margin).all()) for t in thresholds)


# --------------------------------------------------------------------------- boxes and IoU

IOUS = [
    (5, 7, 1.0, torch.float32),
    (12, 3, 100.0, torch.float32),  # pixel coordinates
    (1, 1, 1.0, torch.float32),
    (20, 20, 1.0, torch.float64),
    (8, 30, 37.5, torch.float32),
]


@pytest.mark.parametrize(
    "n, m, scale, dtype",
    IOUS,
    ids=[f"{n} x {m} boxes, scale {s}, {str(d).removeprefix('torch.')}" for n, m, s, d in IOUS],
)
def test_iou_values(student, check, inputs, n, m, scale, dtype):
    boxes1 = (random_boxes(inputs, n, spread=0.4) * scale).to(dtype)
    boxes2 = (random_boxes(inputs, m, spread=0.4) * scale).to(dtype)
    check.close(student.box_iou(boxes1, boxes2), ref.box_iou(boxes1, boxes2), "IoU")


EDGES = {
    "boxes that only touch": ([[0, 0, 1, 1], [2, 0, 3, 2]], [[1, 0, 2, 1], [0, 2, 3, 3]]),
    "a box inside another": ([[0, 0, 4, 4], [1, 1, 2, 3]], [[1, 1, 2, 2], [0, 0, 4, 4]]),
    "disjoint on both axes": ([[0, 0, 1, 1], [5, 5, 6, 8]], [[2, 2, 3, 3], [0, 0, 1, 2]]),
    "identical boxes": ([[0.5, 1, 2.5, 3]], [[0.5, 1, 2.5, 3], [0.5, 1, 2.5, 3]]),
    "N x 0": ([[0, 0, 1, 1], [1, 1, 2, 2]], []),
    "0 x M": ([], [[0, 0, 1, 1]]),
}


@pytest.mark.parametrize("case", list(EDGES))
def test_iou_edge_cases(student, check, case):
    boxes1, boxes2 = (torch.tensor(b, dtype=torch.float32).reshape(-1, 4) for b in EDGES[case])
    check.close(student.box_iou(boxes1, boxes2), ref.box_iou(boxes1, boxes2), "IoU")


CONVERSIONS = [
    ("xyxy", "xywh"),
    ("xyxy", "cxcywh"),
    ("xywh", "xyxy"),
    ("cxcywh", "xyxy"),
    ("xywh", "cxcywh"),
    ("cxcywh", "xywh"),
    ("xyxy", "xyxy"),
]


@pytest.mark.parametrize(
    "in_fmt, out_fmt", CONVERSIONS, ids=[f"{a} to {b}" for a, b in CONVERSIONS]
)
def test_box_convert_formats(student, check, inputs, in_fmt, out_fmt):
    boxes = ref.box_convert(random_boxes(inputs, 9) * 50, "xyxy", in_fmt).float()
    got = student.box_convert(boxes, in_fmt, out_fmt)
    check.close(got, ref.box_convert(boxes, in_fmt, out_fmt), f"{in_fmt} to {out_fmt}")


# --------------------------------------------------------------------------- NMS


def clusters(inputs, count: int, per_cluster: int, threshold: float):
    """Boxes jittered around ``count`` random boxes, distinct scores, IoUs off the threshold."""
    for _ in range(50):
        centres = random_boxes(inputs, count, high=0.3)
        boxes = torch.cat([jittered(inputs, centres, 0.15) for _ in range(per_cluster)]).float()
        iou = ref.box_iou(boxes, boxes)
        if threshold > 0:
            usable = away_from(iou, [threshold])
        else:  # IoU 0 is exact; no tiny positive overlaps
            usable = bool(((iou == 0) | (iou > 1e-4)).all())
        if usable:
            return boxes, distinct_scores(inputs, len(boxes))
    raise RuntimeError("no scene with IoUs away from the threshold")


NMS_CASES = [(3, 5, 0.5), (5, 8, 0.3), (4, 15, 0.7), (2, 1, 0.5), (10, 6, 0.45), (1, 12, 0.6)]


@pytest.mark.parametrize(
    "count, per_cluster, threshold",
    NMS_CASES,
    ids=[f"{c} clusters of {p}, threshold {t}" for c, p, t in NMS_CASES],
)
def test_nms_values(student, check, inputs, count, per_cluster, threshold):
    boxes, scores = clusters(inputs, count, per_cluster, threshold)
    check.equal(student.nms(boxes, scores, threshold), ref.nms(boxes, scores, threshold), "kept")


def tie_scene(inputs, overlap: int, width: int):
    """Rows of three unit-height boxes: a and b of ``width`` overlapping by ``overlap`` (IoU
    exactly overlap / (2 width - overlap), exact in float32 too), c = b moved by half a unit
    (IoU with b above every threshold used, with a below); random integer offsets, a
    power-of-two scale and scores in random order."""
    boxes = []
    for row in range(3):
        x, scale = inputs.integer(0, 50), 2.0 ** inputs.integer(-2, 3)
        y = 3 * row
        a = [x, y, x + width, y + 1]
        b = [x + width - overlap, y, x + 2 * width - overlap, y + 1]
        c = [b[0] + 0.5, y, b[2] + 0.5, y + 1]
        boxes += [[v * scale for v in box] for box in (a, b, c)]
    boxes = torch.tensor(boxes, dtype=torch.float32)
    return boxes, distinct_scores(inputs, len(boxes))


TIES = [(2, 3, 0.5), (2, 5, 0.25), (4, 6, 0.5), (2, 9, 0.125)]


@pytest.mark.parametrize(
    "overlap, width, threshold",
    TIES,
    ids=[f"IoU {o}/{2 * w - o} at threshold {t:.4g}" for o, w, t in TIES],
)
def test_nms_threshold_ties(student, check, inputs, overlap, width, threshold):
    boxes, scores = tie_scene(inputs, overlap, width)
    check.equal(student.nms(boxes, scores, threshold), ref.nms(boxes, scores, threshold), "kept")


def edge_scene(inputs, case: str):
    if case == "no boxes":
        return torch.zeros(0, 4), torch.zeros(0), 0.5
    if case == "one box":
        return random_boxes(inputs, 1).float(), distinct_scores(inputs, 1), 0.5
    if case.startswith("identical boxes"):
        boxes = random_boxes(inputs, 1).float().repeat(4, 1)
        return boxes, distinct_scores(inputs, 4), 1.0 if "1.0" in case else 0.5
    boxes, scores = clusters(inputs, 3, 3, 0.0)  # threshold 0: any overlap suppresses
    return boxes, scores, 0.0


NMS_EDGES = [
    "no boxes",
    "one box",
    "identical boxes, threshold 0.5",
    "identical boxes, threshold 1.0",
    "threshold 0",
]


@pytest.mark.parametrize("case", NMS_EDGES)
def test_nms_edge_cases(student, check, inputs, case):
    boxes, scores, threshold = edge_scene(inputs, case)
    check.equal(student.nms(boxes, scores, threshold), ref.nms(boxes, scores, threshold), "kept")


# --------------------------------------------------------------------------- YOLO targets


def boxes_in_cells(inputs, cells: list[tuple[int, int]], S: int) -> torch.Tensor:
    """One box per (row, column) cell, its centre at least 5% of a cell from the boundaries."""
    boxes = []
    for row, col in cells:
        offset = inputs.rand(2) * 0.9 + 0.05
        cx, cy = (col + float(offset[0])) / S, (row + float(offset[1])) / S
        w, h = (float(v) for v in inputs.rand(2) * 0.5 + 0.02)
        boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def distinct_cells(inputs, count: int, S: int) -> list[tuple[int, int]]:
    chosen = torch.randperm(S * S, generator=inputs.generator)[:count].tolist()
    return [divmod(index, S) for index in chosen]


ENCODES = [(7, 2, 5), (7, 1, 8), (5, 3, 4), (7, 2, 1), (5, 2, 12)]


@pytest.mark.parametrize(
    "S, B, count", ENCODES, ids=[f"S {s}, B {b}, {k} objects" for s, b, k in ENCODES]
)
def test_encode_values(student, check, inputs, S, B, count):
    boxes = boxes_in_cells(inputs, distinct_cells(inputs, count, S), S)
    check.close(student.encode_targets(boxes, S, B), ref.encode_targets(boxes, S, B), "target")


SHARED = [(7, 2, [2, 3, 1]), (7, 3, [3, 4, 2, 1]), (5, 1, [2, 2]), (7, 2, [2, 2, 2, 1, 1])]


@pytest.mark.parametrize(
    "S, B, per_cell",
    SHARED,
    ids=[f"S {s}, B {b}, objects per cell {p}" for s, b, p in SHARED],
)
def test_encode_shared_cells(student, check, inputs, S, B, per_cell):
    cells = distinct_cells(inputs, len(per_cell), S)
    listed = [cell for cell, count in zip(cells, per_cell) for _ in range(count)]
    order = torch.randperm(len(listed), generator=inputs.generator).tolist()
    boxes = boxes_in_cells(inputs, [listed[i] for i in order], S)
    check.close(student.encode_targets(boxes, S, B), ref.encode_targets(boxes, S, B), "target")


def boundary_boxes(inputs, S: int) -> torch.Tensor:
    """Centres on cell boundaries k / S (exact in float32), at 0 and at 1; dyadic sizes."""
    boxes = []
    for cx, cy in [
        (inputs.integer(1, S - 1) / S, (inputs.integer(0, S - 1) + 0.5) / S),
        ((inputs.integer(0, S - 1) + 0.25) / S, inputs.integer(1, S - 1) / S),
        (inputs.integer(1, S - 1) / S, inputs.integer(1, S - 1) / S),
        (0.0, 0.5 / S),
        (1.0, (S - 0.75) / S),
        (0.5 / S, 1.0),
    ]:
        w, h = inputs.integer(1, 16) / 32, inputs.integer(1, 16) / 32
        boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    return torch.tensor(boxes, dtype=torch.float32)


@pytest.mark.parametrize("S, B", [(4, 1), (8, 2), (4, 3)], ids=["S 4, B 1", "S 8, B 2", "S 4, B 3"])
def test_encode_boundaries(student, check, inputs, S, B):
    boxes = boundary_boxes(inputs, S)
    check.close(student.encode_targets(boxes, S, B), ref.encode_targets(boxes, S, B), "target")


# --------------------------------------------------------------------------- decoding

DECODES = [(7, 2), (4, 1), (7, 3), (5, 2)]


def run_decode(student, check, inputs, S, B):
    pred = inputs.rand(S, S, 5 * B + 1).float()
    got = student.decode_predictions(pred, B)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        check.fail("decode_predictions should return a pair (boxes, scores)")
    return got, ref.decode_predictions(pred, B)


@pytest.mark.parametrize("S, B", DECODES, ids=[f"S {s}, B {b}" for s, b in DECODES])
def test_decode_boxes(student, check, inputs, S, B):
    got, expected = run_decode(student, check, inputs, S, B)
    check.close(got[0], expected[0], "boxes")


@pytest.mark.parametrize("S, B", DECODES, ids=[f"S {s}, B {b}" for s, b in DECODES])
def test_decode_scores(student, check, inputs, S, B):
    got, expected = run_decode(student, check, inputs, S, B)
    check.close(got[1], expected[1], "scores")


# --------------------------------------------------------------------------- the loss


def loss_inputs(inputs, n: int, S: int, B: int):
    """Raw outputs (N, S, S, 5B + 1) float32 and targets with shared cells, float32."""
    targets = []
    for _ in range(n):
        cells = distinct_cells(inputs, 6, S)
        listed = cells + cells[:2]  # two cells with two objects
        targets.append(ref.encode_targets(boxes_in_cells(inputs, listed, S), S, B))
    return 2 * inputs.randn(n, S, S, 5 * B + 1).float(), torch.stack(targets).float()


def close_terms(check, got, expected, keys: list[str]) -> None:
    if type(got) is not dict:
        check.fail("yolo_loss should return a dict of 0-d tensors")
    for key in keys:
        if key not in got:
            check.fail(f"the dict has no '{key}'")
        check.close(got[key], expected[key], f"'{key}'")


LOSSES = [(2, 7, 2), (1, 7, 1), (3, 5, 3)]
LOSS_IDS = [f"batch {n}, S {s}, B {b}" for n, s, b in LOSSES]


def run_loss(student, inputs, reference, n, S, B, **lambdas):
    pred, target = loss_inputs(inputs, n, S, B)
    expected = reference(lambda: ref.yolo_loss(pred, target, B, **lambdas))
    return student.yolo_loss(pred, target, B, **lambdas), expected


@pytest.mark.parametrize("n, S, B", LOSSES, ids=LOSS_IDS)
def test_loss_coord(student, check, inputs, reference, n, S, B):
    got, expected = run_loss(student, inputs, reference, n, S, B)
    close_terms(check, got, expected, ["coord"])


@pytest.mark.parametrize("n, S, B", LOSSES, ids=LOSS_IDS)
def test_loss_confidence(student, check, inputs, reference, n, S, B):
    got, expected = run_loss(student, inputs, reference, n, S, B)
    close_terms(check, got, expected, ["obj", "noobj"])


@pytest.mark.parametrize("n, S, B", LOSSES, ids=LOSS_IDS)
def test_loss_class(student, check, inputs, reference, n, S, B):
    got, expected = run_loss(student, inputs, reference, n, S, B)
    close_terms(check, got, expected, ["cls"])


TOTALS = [(2, 7, 2, 5.0, 0.5), (4, 7, 2, 2.0, 1.0), (1, 5, 1, 5.0, 0.1), (3, 4, 3, 10.0, 0.5)]


@pytest.mark.parametrize(
    "n, S, B, lambda_coord, lambda_noobj",
    TOTALS,
    ids=[f"batch {n}, S {s}, B {b}, lambdas {c} and {o}" for n, s, b, c, o in TOTALS],
)
def test_loss_total(student, check, inputs, reference, n, S, B, lambda_coord, lambda_noobj):
    lambdas = {"lambda_coord": lambda_coord, "lambda_noobj": lambda_noobj}
    got, expected = run_loss(student, inputs, reference, n, S, B, **lambdas)
    close_terms(check, got, expected, ["total"])


# --------------------------------------------------------------------------- average precision


def random_scene(inputs, counts: list[int], duplicates: bool = False, false_positives: float = 0.5):
    """Per image: ground truth, 0 to 2 detections of each object (jittered by 5% to 40%),
    and false positives; distinct scores; every IoU 1e-4 away from the thresholds."""
    thresholds = [*COCO_THRESHOLDS, 0.3]
    for _ in range(100):
        truths, detections = [], []
        for count in counts:
            gt = random_boxes(inputs, count)
            found = []
            for k in range(count):
                copies = inputs.integer(1, 3) if duplicates else inputs.integer(0, 2)
                for _ in range(copies):
                    found.append(
                        jittered(inputs, gt[k : k + 1], float(inputs.rand(1)) * 0.35 + 0.05)
                    )
            extra = int(inputs.integer(0, 3) * false_positives * 2)
            found.append(random_boxes(inputs, extra))
            boxes = torch.cat(found).float() if found else torch.zeros(0, 4)
            truths.append(gt.float())
            detections.append(boxes)
        if all(away_from(ref.box_iou(d, g), thresholds) for d, g in zip(detections, truths)):
            scores = distinct_scores(inputs, sum(len(d) for d in detections))
            paired = list(zip(detections, scores.split([len(d) for d in detections])))
            return paired, truths
    raise RuntimeError("no scene with IoUs away from the thresholds")


def close_ap(check, student, detections, truths, threshold=None, what="AP"):
    if threshold is None:
        expected = ref.mean_average_precision(detections, truths)
        got = student.mean_average_precision(detections, truths)
    else:
        expected = ref.average_precision(detections, truths, threshold)
        got = student.average_precision(detections, truths, threshold)
    check.close(number(got), expected, what)


AP_CASES = [
    ([3, 2, 2], 0.5),
    ([4, 3, 2, 4], 0.75),
    ([2, 2, 3, 4, 1, 1], 0.3),
    ([6, 5], 0.5),
    ([9, 8, 4], 0.5),
]


@pytest.mark.parametrize(
    "counts, threshold",
    AP_CASES,
    ids=[f"objects per image {c}, IoU {t}" for c, t in AP_CASES],
)
def test_ap_values(student, check, inputs, counts, threshold):
    detections, truths = random_scene(inputs, counts)
    close_ap(check, student, detections, truths, threshold)


def neighbours(inputs):
    """Two overlapping objects: the first detection overlaps both (best: the second object),
    the next overlaps only the first. Best-IoU matching finds both; first-match does not."""
    truths = torch.tensor([[0.0, 0.0, 0.4, 0.4], [0.1, 0.0, 0.5, 0.4]])
    found = torch.tensor([[0.08, 0.0, 0.48, 0.4], [-0.05, 0.0, 0.35, 0.4]])
    shift, scale = inputs.rand(2).repeat(2) * 0.4, 0.5 + float(inputs.rand(1))
    return (found * scale + shift).float(), (truths * scale + shift).float()


def matching_scene(inputs, case: str):
    if case == "duplicates of each object":
        return random_scene(inputs, [3, 4], duplicates=True)
    if case == "images without detections or ground truth":
        detections, truths = random_scene(inputs, [4, 3, 0, 2])
        detections[1] = (torch.zeros(0, 4), torch.zeros(0))  # 3 objects never detected
        return detections, truths
    if case == "a detection overlapping two objects":
        boxes, gt = neighbours(inputs)
        detections, truths = random_scene(inputs, [3, 2])
        scores = distinct_scores(inputs, 2).sort(descending=True).values
        return [*detections, (boxes, scores)], [*truths, gt]
    detections, truths = random_scene(inputs, [5, 4], duplicates=True, false_positives=1.0)
    boxes, gt = neighbours(inputs)
    scores = distinct_scores(inputs, 2).sort(descending=True).values
    return [(boxes, scores), *detections], [gt, *truths]


MATCHING = [
    "duplicates of each object",
    "images without detections or ground truth",
    "a detection overlapping two objects",
    "all of them",
]


@pytest.mark.parametrize("case", MATCHING)
@pytest.mark.parametrize("threshold", [0.5, 0.75])
def test_ap_matching(student, check, inputs, case, threshold):
    detections, truths = matching_scene(inputs, case)
    close_ap(check, student, detections, truths, threshold)


def pattern_scene(inputs, pattern: str, missed: int, images: int):
    """Detections ranked as ``pattern`` ("H": a hit on a new object, "F": a false positive
    far from every object), ``missed`` objects never detected, spread over ``images``."""
    hits = pattern.count("H")
    truths = [b for b in random_boxes(inputs, hits + missed, spread=0.5, high=0.2)]
    scores = distinct_scores(inputs, len(pattern)).sort(descending=True).values
    per_image = [([], [], []) for _ in range(images)]  # boxes, scores, truths
    hit = 0
    for k, kind in enumerate(pattern):
        image = inputs.integer(0, images - 1)
        if kind == "H":
            per_image[image][0].append(truths[hit])
            per_image[image][2].append(truths[hit])
            hit += 1
        else:  # in a corner no object reaches
            corner = inputs.rand(2) * 0.05
            per_image[image][0].append(torch.cat([corner, corner + 0.1]))
        per_image[image][1].append(scores[k])
    for k in range(hits, hits + missed):
        per_image[inputs.integer(0, images - 1)][2].append(truths[k])
    detections = [
        (
            torch.stack(b).float() if b else torch.zeros(0, 4),
            torch.stack(s) if s else torch.zeros(0),
        )
        for b, s, _ in per_image
    ]
    return detections, [torch.stack(t).float() if t else torch.zeros(0, 4) for _, _, t in per_image]


INTERPOLATIONS = [
    ("HHHFF", 0, 1),  # full recall, false positives last
    ("FFH", 0, 1),  # one object, found third
    ("HFFHHFH", 3, 3),  # precision rises again; 7 objects
    ("HFH", 1, 2),  # recall stops at 2/3
    ("FHFHFHFHFHFH", 1, 3),  # 7 objects, 6 found
    ("HHFHHHFFHH", 4, 2),  # 11 objects
]


@pytest.mark.parametrize(
    "pattern, missed, images",
    INTERPOLATIONS,
    ids=[f"ranked {p}, {m} missed, {i} images" for p, m, i in INTERPOLATIONS],
)
def test_ap_interpolation(student, check, inputs, pattern, missed, images):
    detections, truths = pattern_scene(inputs, pattern, missed, images)
    close_ap(check, student, detections, truths, 0.5)


MAPS = [[3, 2, 2], [4, 3, 2, 4], [1], [6, 5, 2]]


@pytest.mark.parametrize("counts", MAPS, ids=[f"objects per image {c}" for c in MAPS])
def test_map_values(student, check, inputs, counts):
    detections, truths = random_scene(inputs, counts, false_positives=0.3)
    close_ap(check, student, detections, truths, None, "mAP@0.5:0.95")
