"""Do the detection references agree with pycocotools, torchvision and the stated YOLO layout?"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pycocotools.coco import COCO  # a test-only dependency, pinned in requirements.lock
from pycocotools.cocoeval import COCOeval
from torchvision import ops

from solutions import detection as ref

# --------------------------------------------------------------------------- COCO AP


def scene(seed: int, tied: bool = False):
    """Random images in pixel coordinates: ground truth (some images without), jittered
    detections (some duplicates) and false positives; scores rounded to 0.1 when ``tied``."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=generator, dtype=torch.float64)

    def boxes(n):
        centre, size = rand(n, 2) * 80 + 10, rand(n, 2) * 30 + 5
        return torch.cat([centre - size / 2, centre + size / 2], dim=1)

    detections, truths = [], []
    for _ in range(int(torch.randint(2, 7, (1,), generator=generator))):
        gt = boxes(int(torch.randint(0, 6, (1,), generator=generator)))
        copies = gt.repeat(int(torch.randint(1, 3, (1,), generator=generator)), 1)
        moved = copies + 6 * torch.randn(copies.shape, generator=generator, dtype=torch.float64)
        found = torch.cat([moved, boxes(int(torch.randint(0, 4, (1,), generator=generator)))])
        found = torch.cat([found[:, :2], torch.maximum(found[:, 2:], found[:, :2] + 1)], dim=1)
        scores = rand(len(found))
        if tied:
            scores = (scores * 10).round() / 10 + 0.01
        detections.append((found, scores))
        truths.append(gt)
    if sum(len(d) for d, _ in detections) == 0 or sum(len(t) for t in truths) == 0:
        return scene(seed + 1000, tied)
    return detections, truths


def coco_ap(detections, truths, thresholds) -> np.ndarray:
    """AP at each threshold from pycocotools' COCOeval (one category, area "all")."""

    def xywh(box):
        x1, y1, x2, y2 = box.tolist()
        return [x1, y1, x2 - x1, y2 - y1]

    annotations = []
    for i, gt in enumerate(truths):
        for box in gt:
            w, h = xywh(box)[2:]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": 1,
                    "bbox": xywh(box),
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    results = [
        {"image_id": i + 1, "category_id": 1, "bbox": xywh(box), "score": float(score)}
        for i, (found, scores) in enumerate(detections)
        for box, score in zip(found, scores)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {
            "images": [{"id": i + 1} for i in range(len(truths))],
            "annotations": annotations,
            "categories": [{"id": 1, "name": "object"}],
        }
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluation.params.iouThrs = np.asarray(thresholds, dtype=np.float64)
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"][:, :, 0, 0, -1]  # (T, 101): area "all", 100 dets
    return precision.mean(axis=1)


@pytest.mark.parametrize("tied", [False, True], ids=["distinct scores", "tied scores"])
@pytest.mark.parametrize("seed", range(8))
def test_reference_ap_is_cocoeval(seed, tied):
    detections, truths = scene(seed, tied)
    thresholds = [*ref.COCO_THRESHOLDS, 0.3]
    expected = coco_ap(detections, truths, thresholds)
    got = [ref.average_precision(detections, truths, t) for t in thresholds]
    assert np.allclose(got, expected, rtol=0, atol=1e-12), (got, expected)
    assert math.isclose(
        ref.mean_average_precision(detections, truths), expected[:10].mean(), abs_tol=1e-12
    )


def test_an_iou_equal_to_the_threshold_is_a_match_as_in_cocoeval():
    truths = [torch.tensor([[0.0, 0.0, 30.0, 10.0], [50.0, 50.0, 60.0, 60.0]])]
    detections = [(torch.tensor([[10.0, 0.0, 40.0, 10.0]]), torch.tensor([0.9]))]  # IoU 20/40
    assert ref.box_iou(detections[0][0], truths[0])[0, 0] == 0.5
    expected = coco_ap(detections, truths, [0.5, 0.55])
    assert ref.average_precision(detections, truths, 0.5) == pytest.approx(expected[0])
    assert expected[0] > 0.4 and expected[1] == 0, "a match at 0.5, none at 0.55"


def test_a_duplicate_is_a_false_positive_and_recall_caps_the_curve():
    truth = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    found = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.5, 0.0, 10.0, 10.0]])
    ap = ref.average_precision([(found, torch.tensor([0.9, 0.8]))], [truth])
    assert ap == pytest.approx(51 / 101), "precision 1 up to recall 0.5, nothing after"


def test_without_ground_truth_ap_is_undefined():
    found = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    assert math.isnan(ref.average_precision([(found, torch.ones(1))], [torch.zeros(0, 4)]))


# --------------------------------------------------------------------------- boxes and NMS


def test_torchvision_nms_keeps_an_iou_equal_to_the_threshold():
    """The convention the notebook states: only IoU > threshold suppresses."""
    boxes = torch.tensor([[0.0, 0.0, 3.0, 1.0], [1.0, 0.0, 4.0, 1.0]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8], dtype=torch.float64)
    assert ops.box_iou(boxes, boxes)[0, 1] == 0.5
    assert ref.nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert ref.nms(boxes, scores, 0.5 - 1e-9).tolist() == [0]
    assert ref.nms(boxes.float(), scores.float(), 0.5).tolist() == [0, 1], "float32 too"


def test_box_formats_round_trip():
    boxes = torch.tensor([[1.0, 2.0, 4.0, 8.0]], dtype=torch.float64)
    assert ref.box_convert(boxes, "xyxy", "xywh").tolist() == [[1, 2, 3, 6]]
    assert ref.box_convert(boxes, "xyxy", "cxcywh").tolist() == [[2.5, 5, 3, 6]]
    for fmt in ["xywh", "cxcywh"]:
        back = ref.box_convert(ref.box_convert(boxes, "xyxy", fmt), fmt, "xyxy")
        assert torch.allclose(back, boxes)


# --------------------------------------------------------------------------- YOLO


def test_encoding_follows_the_stated_layout():
    boxes = torch.tensor(
        [[0.10, 0.20, 0.30, 0.50], [0.15, 0.25, 0.25, 0.35], [0.16, 0.26, 0.24, 0.34]],
        dtype=torch.float64,
    )
    target = ref.encode_targets(boxes, S=7, B=2)
    assert target.shape == (7, 7, 11)
    assert torch.allclose(target[2, 1, :5], torch.tensor([0.4, 0.45, 0.2, 0.3, 1.0]).double())
    assert torch.allclose(target[2, 1, 5:10], torch.tensor([0.4, 0.1, 0.1, 0.1, 1.0]).double())
    assert target[..., 10].sum() == 1, "one class entry for the cell"
    assert target[..., [4, 9]].sum() == 2, "the third object in a cell of B = 2 is dropped"


def test_boundaries_go_right_and_down_and_one_goes_to_the_last_cell():
    boxes = torch.tensor([[0.0, 0.25, 0.5, 0.75], [0.75, 0.75, 1.25, 1.25]], dtype=torch.float64)
    target = ref.encode_targets(boxes, S=4, B=1)
    assert target[2, 1, 4] == 1 and target[2, 1, 0] == 0 and target[2, 1, 1] == 0
    assert target[3, 3, 4] == 1 and target[3, 3, 0] == 1, "cx = 1: the last column, x = 1"


def test_decoding_inverts_encoding():
    cells = torch.randperm(49, generator=torch.Generator().manual_seed(0))[:6]
    centres = torch.stack([(cells % 7 + 0.3) / 7, (cells // 7 + 0.6) / 7], dim=1).double()
    boxes = torch.cat([centres - 0.05, centres + 0.05], dim=1)  # one object per cell
    target = ref.encode_targets(boxes, S=7, B=2)
    decoded, scores = ref.decode_predictions(target, B=2)
    found = decoded[scores == 1]
    assert len(found) == len(boxes)
    key = [100, 1, 0, 0]  # sort by x1, then y1
    order = (found * torch.tensor(key).double()).sum(1).argsort()
    assert torch.allclose(
        found[order], boxes[(boxes * torch.tensor(key).double()).sum(1).argsort()]
    )


def test_the_loss_is_the_written_out_sum():
    generator = torch.Generator().manual_seed(4)
    boxes = torch.tensor([[0.1, 0.1, 0.3, 0.4], [0.12, 0.12, 0.2, 0.2], [0.6, 0.5, 0.9, 0.9]])
    target = ref.encode_targets(boxes.double(), S=7, B=2)[None]
    pred = torch.randn(1, 7, 7, 11, generator=generator, dtype=torch.float64)
    terms = ref.yolo_loss(pred, target)
    coord = obj = noobj = cls = 0.0
    for i in range(7):
        for j in range(7):
            p, t = pred[0, i, j], target[0, i, j]
            for b in range(2):
                x, y, w, h = torch.sigmoid(p[5 * b : 5 * b + 4]).tolist()
                logit = p[5 * b + 4 : 5 * b + 5]
                if t[5 * b + 4] == 1:
                    tx, ty, tw, th = t[5 * b : 5 * b + 4].tolist()
                    coord += (x - tx) ** 2 + (y - ty) ** 2
                    coord += (math.sqrt(w) - math.sqrt(tw)) ** 2 + (
                        math.sqrt(h) - math.sqrt(th)
                    ) ** 2
                    obj += float(F.binary_cross_entropy_with_logits(logit, torch.ones(1).double()))
                else:
                    noobj += float(
                        F.binary_cross_entropy_with_logits(logit, torch.zeros(1).double())
                    )
            if t[10] == 1:
                cls += float(F.binary_cross_entropy_with_logits(p[10:], torch.ones(1).double()))
    assert float(terms["coord"]) == pytest.approx(5 * coord)
    assert float(terms["obj"]) == pytest.approx(obj)
    assert float(terms["noobj"]) == pytest.approx(0.5 * noobj)
    assert float(terms["cls"]) == pytest.approx(cls)
    assert float(terms["total"]) == pytest.approx(5 * coord + obj + 0.5 * noobj + cls)
    double = ref.yolo_loss(torch.cat([pred, pred]), torch.cat([target, target]))
    assert float(double["total"]) == pytest.approx(float(terms["total"])), "divided by N"
