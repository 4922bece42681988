"""References for c12_detection: box IoU, NMS, YOLO targets and loss, COCO average precision.

- Boxes are ``(x1, y1, x2, y2)`` (``xyxy``); ``box_convert``, ``box_iou`` and ``nms`` are
  torchvision's own ``torchvision.ops`` functions, in float64. torchvision's ``nms``
  suppresses a box only when its IoU with a kept box is strictly above the threshold, so a
  box at exactly the threshold is kept (tests/test_solutions_detection.py pins it).
- YOLO (one class, ``S x S`` cells, ``B`` predictors per cell): the per-cell vector is
  ``[x, y, w, h, obj] * B + [class]``. ``x, y`` are the centre's offsets inside its cell,
  ``w, h`` fractions of the image. The centre's cell is ``floor(c * S)`` clamped to ``S - 1``
  (a centre on a boundary belongs to the cell right of / below it). The k-th object (in the
  given order) whose centre falls in a cell goes to predictor ``k``; objects beyond ``B`` in
  one cell are dropped.
- The loss takes raw network outputs: box values and probabilities are their sigmoids.
  ``lambda_coord`` times the squared errors of ``x, y, sqrt(w), sqrt(h)`` over responsible
  predictors; BCE on the confidence (target 1 for responsible predictors, 0 with weight
  ``lambda_noobj`` for the others) and on the class (cells that hold an object); each term
  summed and divided by the batch size.
- Average precision is COCO's (``pycocotools.cocoeval.COCOeval``, one class, every
  detection, area "all"): per image, detections by decreasing score are matched greedily to
  the unmatched ground-truth box of highest IoU, a match needing IoU >= threshold; over the
  data set, precision made monotone from the right, read at the 101 recall points
  0, 0.01, ..., 1 (the first detection whose recall reaches the point, 0 past the end),
  averaged. tests/test_solutions_detection.py cross-checks it against pycocotools.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision import ops

COCO_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # what COCOeval uses (0.5, 0.55, ..., 0.95)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)

# --------------------------------------------------------------------------- boxes


def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    return ops.box_convert(boxes.double(), in_fmt, out_fmt)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    return ops.box_iou(boxes1.double(), boxes2.double())


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    return ops.nms(boxes.double(), scores.double(), iou_threshold)


# --------------------------------------------------------------------------- YOLO targets


def encode_targets(boxes: torch.Tensor, S: int = 7, B: int = 2) -> torch.Tensor:
    """``(S, S, 5B + 1)`` float64 targets for normalised ``xyxy`` boxes ``(K, 4)``."""
    boxes = boxes.double()
    target = torch.zeros(S, S, 5 * B + 1, dtype=torch.float64)
    filled = [[0] * S for _ in range(S)]
    for x1, y1, x2, y2 in boxes.tolist():
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        col, row = min(int(np.floor(cx * S)), S - 1), min(int(np.floor(cy * S)), S - 1)
        slot = filled[row][col]
        if slot == B:
            continue
        filled[row][col] += 1
        target[row, col, 5 * slot : 5 * slot + 5] = torch.tensor(
            [cx * S - col, cy * S - row, w, h, 1.0], dtype=torch.float64
        )
        target[row, col, 5 * B] = 1.0
    return target


def decode_predictions(pred: torch.Tensor, B: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Activated ``(S, S, 5B + 1)`` -> boxes ``(S*S*B, 4)`` xyxy and scores ``(S*S*B,)``."""
    pred = pred.double()
    S = pred.shape[0]
    rows, cols = torch.meshgrid(
        torch.arange(S, dtype=torch.float64), torch.arange(S, dtype=torch.float64), indexing="ij"
    )
    per_box = pred[..., : 5 * B].reshape(S, S, B, 5)  # (S, S, B, [x, y, w, h, obj])
    cx = (cols[..., None] + per_box[..., 0]) / S
    cy = (rows[..., None] + per_box[..., 1]) / S
    cxcywh = torch.stack([cx, cy, per_box[..., 2], per_box[..., 3]], dim=-1).reshape(-1, 4)
    scores = (per_box[..., 4] * pred[..., 5 * B : 5 * B + 1]).reshape(-1)
    return ops.box_convert(cxcywh, "cxcywh", "xyxy"), scores


# --------------------------------------------------------------------------- the loss


def _bce_with_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")


def yolo_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    B: int = 2,
    lambda_coord: float = 5.0,
    lambda_noobj: float = 0.5,
) -> dict[str, torch.Tensor]:
    """The four weighted terms and their total, each summed and divided by the batch size."""
    pred, target = pred.double(), target.double()
    n, s = pred.shape[0], pred.shape[1]
    p = pred[..., : 5 * B].reshape(n, s, s, B, 5)
    t = target[..., : 5 * B].reshape(n, s, s, B, 5)
    responsible = t[..., 4] == 1
    boxes = torch.sigmoid(p[..., :4])
    coord = (
        (boxes[..., 0] - t[..., 0]) ** 2
        + (boxes[..., 1] - t[..., 1]) ** 2
        + (boxes[..., 2].sqrt() - t[..., 2].sqrt()) ** 2
        + (boxes[..., 3].sqrt() - t[..., 3].sqrt()) ** 2
    )
    confidence = _bce_with_logits(p[..., 4], responsible.double())
    has_object = responsible.any(dim=-1)
    classes = _bce_with_logits(pred[..., 5 * B :], target[..., 5 * B :]).sum(-1)
    terms = {
        "coord": lambda_coord * coord[responsible].sum() / n,
        "obj": confidence[responsible].sum() / n,
        "noobj": lambda_noobj * confidence[~responsible].sum() / n,
        "cls": classes[has_object].sum() / n,
    }
    terms["total"] = terms["coord"] + terms["obj"] + terms["noobj"] + terms["cls"]
    return terms


# --------------------------------------------------------------------------- COCO AP


def _match_image(
    boxes: np.ndarray, scores: np.ndarray, truths: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.evaluateImg for one class: (scores by decreasing score, true-positive flags)."""
    order = np.argsort(-scores, kind="mergesort")
    boxes, scores = boxes[order], scores[order]
    iou = box_iou(torch.from_numpy(boxes), torch.from_numpy(truths)).numpy()
    taken = np.zeros(len(truths), dtype=bool)
    hits = np.zeros(len(boxes), dtype=bool)
    limit = min(threshold, 1 - 1e-10)
    for d in range(len(boxes)):
        best, match = limit, -1
        for g in range(len(truths)):
            if taken[g] or iou[d, g] < best:
                continue
            best, match = iou[d, g], g
        if match >= 0:
            taken[match], hits[d] = True, True
    return scores, hits


def average_precision(
    detections: list[tuple[torch.Tensor, torch.Tensor]],
    ground_truths: list[torch.Tensor],
    iou_threshold: float = 0.5,
) -> float:
    """COCO AP at one IoU threshold; NaN without ground truth (COCO's -1)."""
    all_scores, all_hits = [], []
    for (boxes, scores), truths in zip(detections, ground_truths, strict=True):
        s, h = _match_image(
            boxes.double().cpu().numpy().reshape(-1, 4),
            scores.double().cpu().numpy().reshape(-1),
            truths.double().cpu().numpy().reshape(-1, 4),
            float(iou_threshold),
        )
        all_scores.append(s)
        all_hits.append(h)
    positives = sum(len(t) for t in ground_truths)
    if positives == 0:
        return float("nan")
    scores, hits = np.concatenate(all_scores), np.concatenate(all_hits)
    order = np.argsort(-scores, kind="mergesort")
    hits = hits[order]
    tp, fp = np.cumsum(hits), np.cumsum(~hits)
    recall = tp / positives
    precision = tp / np.maximum(tp + fp, np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone from the right
    at = np.searchsorted(recall, RECALL_POINTS, side="left")
    values = np.array([precision[i] if i < len(precision) else 0.0 for i in at])
    return float(values.mean())


def mean_average_precision(
    detections: list[tuple[torch.Tensor, torch.Tensor]], ground_truths: list[torch.Tensor]
) -> float:
    """COCO's mAP@0.5:0.95: AP averaged over the thresholds 0.5, 0.55, ..., 0.95."""
    return float(
        np.mean([average_precision(detections, ground_truths, t) for t in COCO_THRESHOLDS])
    )
