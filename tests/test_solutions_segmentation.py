"""Do the U-Net and segmentation references agree with PyTorch, torchvision and hand-worked cases?"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import load_cnnkit
from torchvision.ops import box_iou

from solutions import segmentation as seg
from solutions import unet


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and BatchNorm statistics, so every term of the forward pass matters."""
    g = generator(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=g, dtype=tensor.dtype))
            else:
                tensor.copy_(0.3 * torch.randn(tensor.shape, generator=g, dtype=tensor.dtype))
    return module


def functional_double_conv(x: torch.Tensor, block: unet.DoubleConv, training: bool) -> torch.Tensor:
    for conv, bn in ((block.conv1, block.bn1), (block.conv2, block.bn2)):
        x = F.conv2d(x, conv.weight, padding=1)
        mean, var = (None, None) if training else (bn.running_mean, bn.running_var)
        x = F.relu(F.batch_norm(x, mean, var, bn.weight, bn.bias, training=training, eps=bn.eps))
    return x


# --------------------------------------------------------------------------- U-Net


@pytest.mark.parametrize("training", [False, True])
def test_double_conv_matches_functional_ops(training):
    block = randomize(unet.DoubleConv(3, 5).double()).train(training)
    x = torch.randn(2, 3, 7, 10, generator=generator(1), dtype=torch.float64)
    torch.testing.assert_close(block(x), functional_double_conv(x, block, training))


def test_double_conv_parameter_order_and_count():
    block = unet.DoubleConv(3, 5)
    shapes = [tuple(p.shape) for p in block.parameters()]
    assert shapes == [(5, 3, 3, 3), (5,), (5,), (5, 5, 3, 3), (5,), (5,)]
    assert sum(p.numel() for p in block.parameters()) == 9 * 3 * 5 + 9 * 5 * 5 + 4 * 5


def test_encoder_block_pools_odd_sizes_down():
    block = randomize(unet.EncoderBlock(3, 4).double()).eval()
    x = torch.randn(2, 3, 9, 7, generator=generator(2), dtype=torch.float64)
    skip, pooled = block(x)
    torch.testing.assert_close(skip, functional_double_conv(x, block.conv, False))
    assert pooled.shape == (2, 4, 4, 3)
    torch.testing.assert_close(pooled, F.max_pool2d(skip, 2))


@pytest.mark.parametrize("skip_size", [(8, 10), (9, 11), (9, 10)])
def test_decoder_block_pads_bottom_right_and_concatenates(skip_size):
    block = randomize(unet.DecoderBlock(6, 3).double()).eval()
    x = torch.randn(2, 6, 4, 5, generator=generator(3), dtype=torch.float64)
    skip = torch.randn(2, 3, *skip_size, generator=generator(4), dtype=torch.float64)
    up = F.conv_transpose2d(x, block.up.weight, block.up.bias, stride=2)  # (2, 3, 8, 10)
    padded = torch.zeros(2, 3, *skip_size, dtype=torch.float64)
    padded[:, :, :8, :10] = up  # differences of 1 go entirely to the bottom/right
    expected = functional_double_conv(torch.cat([padded, skip], dim=1), block.conv, False)
    torch.testing.assert_close(block(x, skip), expected)


def test_pad_to_splits_larger_differences():
    x = torch.ones(1, 1, 2, 2)
    padded = unet.pad_to(x, (5, 6))
    assert padded.shape == (1, 1, 5, 6)
    assert padded[0, 0, 1:3, 2:4].eq(1).all() and padded.sum() == 4


@pytest.mark.parametrize("size", [(16, 16), (37, 50), (45, 33)])
def test_unet_keeps_any_input_size(size):
    model = unet.UNet(3, 21, base_channels=4, depth=4).eval()
    assert model(torch.randn(1, 3, *size)).shape == (1, 21, *size)


@pytest.mark.parametrize("config", [(3, 21, 64, 4), (1, 2, 16, 3), (3, 5, 4, 2)])
def test_unet_parameter_count_matches_formula(config):
    model = unet.UNet(*config)
    assert sum(p.numel() for p in model.parameters()) == unet.unet_parameter_count(*config)


def masked_batch(seed: int, ignore: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    g = generator(seed)
    logits = torch.randn(2, 5, 6, 7, generator=g, dtype=torch.float64)
    target = torch.randint(0, 5, (2, 6, 7), generator=g)
    target[torch.rand(2, 6, 7, generator=g) < ignore] = 255
    return logits, target


def test_masked_cross_entropy_matches_torch_ignore_index():
    logits, target = masked_batch(5)
    torch.testing.assert_close(
        unet.masked_cross_entropy(logits, target), F.cross_entropy(logits, target, ignore_index=255)
    )


def test_masked_cross_entropy_gradient_matches_torch():
    logits, target = masked_batch(6)
    mine = logits.clone().requires_grad_(True)
    ref = logits.clone().requires_grad_(True)
    unet.masked_cross_entropy(mine, target).backward()
    F.cross_entropy(ref, target, ignore_index=255).backward()
    torch.testing.assert_close(mine.grad, ref.grad)


def test_masked_cross_entropy_is_zero_when_everything_is_ignored():
    logits, _ = masked_batch(7)
    target = torch.full((2, 6, 7), 255)
    assert unet.masked_cross_entropy(logits, target).item() == 0.0
    assert math.isnan(
        F.cross_entropy(logits, target, ignore_index=255).item()
    )  # why the convention


def test_masked_cross_entropy_honours_ignore_index():
    logits, target = masked_batch(8, ignore=0.0)
    target[:, :2] = -1
    torch.testing.assert_close(
        unet.masked_cross_entropy(logits, target, ignore_index=-1),
        F.cross_entropy(logits, target, ignore_index=-1),
    )


# --------------------------------------------------------------------------- metrics


def label_maps(seed: int, num_classes: int, shape=(3, 11, 13), ignore: float = 0.1):
    g = generator(seed)
    target = torch.randint(0, num_classes, shape, generator=g)
    target[torch.rand(shape, generator=g) < ignore] = 255
    pred = torch.where(
        torch.rand(shape, generator=g) < 0.6,
        target,
        torch.randint(0, num_classes, shape, generator=g),
    )
    pred[pred == 255] = 0
    return pred, target


def test_confusion_matrix_counts_like_a_loop():
    pred, target = label_maps(9, 4)
    expected = torch.zeros(4, 4, dtype=torch.int64)
    for p, t in zip(pred.flatten().tolist(), target.flatten().tolist()):
        if t != 255:
            expected[t, p] += 1
    confusion = seg.confusion_matrix(pred, target, 4)
    assert confusion.dtype == torch.int64
    torch.testing.assert_close(confusion, expected)


def test_iou_from_confusion_equals_set_iou_of_label_maps():
    pred, target = label_maps(10, 6)
    pred[pred == 5] = 4  # class 5 only in the target: IoU 0
    target[target == 3] = 255  # class 3 only in the prediction: IoU 0
    valid = target != 255
    iou = seg.per_class_iou(seg.confusion_matrix(pred, target, 7))
    for c in range(7):
        inter = ((pred == c) & (target == c) & valid).sum().item()
        union = (((pred == c) | (target == c)) & valid).sum().item()
        expected = inter / union if union else math.nan
        assert (math.isnan(expected) and math.isnan(iou[c])) or iou[c].item() == pytest.approx(
            expected
        )
    assert iou[3] == 0 and iou[5] == 0 and math.isnan(iou[6])


def test_hand_worked_iou_and_accuracy():
    target = torch.tensor([0, 0, 1, 1, 255])
    pred = torch.tensor([0, 1, 1, 1, 2])
    confusion = seg.confusion_matrix(pred, target, 3)
    iou = seg.per_class_iou(confusion)
    assert (
        iou[0].item() == pytest.approx(0.5)
        and iou[1].item() == pytest.approx(2 / 3)
        and math.isnan(iou[2])
    )
    assert seg.mean_iou(confusion) == pytest.approx((0.5 + 2 / 3) / 2)
    assert seg.pixel_accuracy(confusion) == pytest.approx(3 / 4)


def test_metrics_when_every_pixel_is_ignored():
    pred, target = label_maps(11, 3)
    confusion = seg.confusion_matrix(pred, torch.full_like(target, 255), 3)
    assert confusion.sum() == 0
    assert torch.isnan(seg.per_class_iou(confusion)).all()
    assert math.isnan(seg.mean_iou(confusion)) and math.isnan(seg.pixel_accuracy(confusion))


def test_pixel_accuracy_equals_fraction_of_correct_counted_pixels():
    pred, target = label_maps(12, 5)
    valid = target != 255
    expected = (pred == target)[valid].double().mean().item()
    assert seg.pixel_accuracy(seg.confusion_matrix(pred, target, 5)) == pytest.approx(expected)


def rectangle_masks(boxes: torch.Tensor, size: int = 20) -> torch.Tensor:
    masks = torch.zeros(len(boxes), size, size, dtype=torch.bool)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes.tolist()):
        mask[int(y1) : int(y2), int(x1) : int(x2)] = True
    return masks


def test_mask_iou_of_rectangles_equals_torchvision_box_iou():
    g = generator(13)
    corners = torch.randint(0, 10, (7, 2), generator=g)
    boxes = torch.cat(
        [corners, corners + torch.randint(1, 10, (7, 2), generator=g)], dim=1
    ).double()
    masks = rectangle_masks(boxes)
    torch.testing.assert_close(seg.mask_iou(masks[:3], masks[3:]), box_iou(boxes[:3], boxes[3:]))


def test_mask_iou_of_empty_masks_is_zero():
    masks = torch.zeros(2, 5, 5, dtype=torch.bool)
    masks[1, :2] = True
    iou = seg.mask_iou(masks, masks)
    torch.testing.assert_close(iou, torch.tensor([[0.0, 0.0], [0.0, 1.0]], dtype=torch.float64))
    assert seg.mask_iou(masks[:0], masks).shape == (0, 2)


def test_panoptic_quality_hand_worked():
    gt = torch.zeros(2, 4, 5, dtype=torch.bool)
    gt[0, :, :3] = True  # class 1, 12 pixels
    gt[1, :, 3:] = True  # class 2, 8 pixels
    pred = torch.zeros(3, 4, 5, dtype=torch.bool)
    pred[0, :, :2] = True  # class 1: IoU 8/12 with gt 0 -> TP
    pred[1, :, 2:4] = True  # class 2: IoU 4/12 with gt 1 -> FP, and gt 1 is a FN
    pred[2, :, 4] = True  # class 3: FP
    result = seg.panoptic_quality(pred, torch.tensor([1, 2, 3]), gt, torch.tensor([1, 2]))
    assert result["pq"] == pytest.approx((8 / 12) / 3)
    assert result["sq"] == pytest.approx((8 / 12) / 3)
    assert result["rq"] == pytest.approx(1 / 3)
    assert result["sq"] * result["rq"] != pytest.approx(result["pq"]), "PQ = SQ x RQ per class only"


def test_panoptic_quality_leaves_void_out_of_unions_and_false_positives():
    gt = torch.zeros(1, 4, 6, dtype=torch.bool)
    gt[0, :, :3] = True  # class 1; columns 3-5 are void (in no true segment)
    pred = torch.zeros(3, 4, 6, dtype=torch.bool)
    pred[0, :, :4] = True  # runs onto void: IoU 12 / 12
    pred[1, :, 4] = True  # class 2, all void: ignored
    pred[2, :, 5] = True  # class 1, all void: ignored, not a second FP of class 1
    labels = torch.tensor([1, 2, 1])
    statistics = seg.panoptic_statistics(pred, labels, gt, torch.tensor([1]))
    assert statistics == {1: (1, 0, 0, 1.0), 2: (0, 0, 0, 0.0)}
    assert seg.panoptic_quality(pred, labels, gt, torch.tensor([1])) == {
        "pq": 1.0,
        "sq": 1.0,
        "rq": 1.0,
    }


def test_panoptic_statistics_of_images_add_up_to_those_of_a_canvas():
    """Counting image by image and adding equals one canvas with the images side by side."""
    g = generator(14)
    scenes = []
    for _ in range(3):
        ids = torch.randint(0, 4, (5, 6), generator=g)  # 0: void in the truth
        guess = torch.where(
            torch.rand(5, 6, generator=g) < 0.8, ids, torch.randint(1, 4, (5, 6), generator=g)
        )
        present_gt = [i for i in range(1, 4) if (ids == i).any()]
        present_pred = [i for i in range(0, 4) if (guess == i).any()]
        scenes.append(
            (
                torch.stack([guess == i for i in present_pred]),
                torch.tensor([i % 3 for i in present_pred]),
                torch.stack([ids == i for i in present_gt]),
                torch.tensor([i % 3 for i in present_gt]),
            )
        )
    total = {}
    for scene in scenes:
        total = seg.add_statistics(total, seg.panoptic_statistics(*scene))
    width = 6 * len(scenes)

    def canvas(part: int) -> torch.Tensor:
        placed = []
        for slot, scene in enumerate(scenes):
            masks = torch.zeros(len(scene[part]), 5, width, dtype=torch.bool)
            masks[:, :, 6 * slot : 6 * slot + 6] = scene[part]
            placed.append(masks)
        return torch.cat(placed)

    labels = [torch.cat([scene[part] for scene in scenes]) for part in (1, 3)]
    together = seg.panoptic_quality(canvas(0), labels[0], canvas(2), labels[1])
    accumulated = seg.panoptic_average(total)
    assert accumulated == pytest.approx(together)
    assert not math.isnan(accumulated["pq"])


def test_panoptic_quality_of_a_perfect_prediction_is_one_and_of_nothing_is_nan():
    masks = torch.zeros(3, 6, 6, dtype=torch.bool)
    masks[0, :2], masks[1, 2:4], masks[2, 4:] = True, True, True
    labels = torch.tensor([4, 4, 7])
    assert seg.panoptic_quality(masks, labels, masks, labels) == {"pq": 1.0, "sq": 1.0, "rq": 1.0}
    empty = seg.panoptic_quality(masks[:0], labels[:0], masks[:0], labels[:0])
    assert all(math.isnan(v) for v in empty.values())


# --------------------------------------------------------------------------- the VOC fixture (cnnkit)


def test_voc_fixture_is_in_the_real_format_and_torchvision_reads_it(tmp_path, monkeypatch, capsys):
    from PIL import Image

    cnnkit = load_cnnkit()
    monkeypatch.delenv("CNNKIT_DOWNLOAD", raising=False)
    train = cnnkit.load_voc_segmentation("train", size=(45, 61), root=tmp_path)
    val = cnnkit.load_voc_segmentation("val", root=tmp_path)
    assert "synthetic fixture" in capsys.readouterr().out
    assert len(train) == 64 and len(val) == 24
    image, mask = train[0]
    assert image.shape == (3, 45, 61) and image.dtype == torch.float32
    assert mask.shape == (45, 61) and mask.dtype == torch.int64
    png = Image.open(val.targets[0])
    assert (
        png.mode == "P"
        and png.getpalette()[: 3 * 16] == cnnkit.voc_palette()[:16].flatten().tolist()
    )
    labels = set().union(*(set(val[i][1].unique().tolist()) for i in range(len(val))))
    assert labels == {0, 255} | set(cnnkit.VOC_FIXTURE_OBJECTS), (
        "background, the four classes, void"
    )
    assert any(s % 16 for i in range(4) for s in val[i][0].shape[1:]), (
        "sizes that are not multiples of 16"
    )


def test_voc_palette_has_the_known_colours():
    palette = load_cnnkit().voc_palette()
    assert palette[1].tolist() == [128, 0, 0] and palette[15].tolist() == [192, 128, 128]
    assert palette[255].tolist() == [224, 224, 192]


def test_voc_fixture_is_deterministic_and_instances_match_classes(tmp_path):
    from PIL import Image
    from torchvision.datasets import VOCSegmentation

    cnnkit = load_cnnkit()
    a = cnnkit.write_voc_fixture(tmp_path / "a", train_size=3, val_size=2)
    b = cnnkit.write_voc_fixture(tmp_path / "b", train_size=3, val_size=2)
    name = "SegmentationClass/2012_000004.png"
    assert (a / name).read_bytes() == (b / name).read_bytes()
    dataset = VOCSegmentation(str(tmp_path / "a"), year="2012", image_set="val")
    for index in range(len(dataset)):
        classes = np.array(Image.open(dataset.targets[index]))
        masks, labels = cnnkit.voc_instances(dataset, index)
        assert masks.shape[1:] == classes.shape and masks.sum(0).max() <= 1, (
            "instances do not overlap"
        )
        for mask, label in zip(masks, labels):
            assert (classes[mask.numpy()] == label.item()).all()
