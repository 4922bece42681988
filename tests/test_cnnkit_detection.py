"""cnnkit.detection: is the fixture real PASCAL VOC that torchvision's own loader reads, does it
hold what the lab needs (one class, several objects, shared grid cells), and do the loader's
choices and the transform do what they say?"""

from __future__ import annotations

import importlib

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.datasets import VOCDetection  # noqa: E402

from tests.conftest import load_cnnkit  # noqa: E402

cnnkit = load_cnnkit()
detection = importlib.import_module(f"{cnnkit.__name__}.detection")  # not re-exported by cnnkit


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    detection.write_detection_fixture(root, train_size=24, val_size=8)
    return root


def test_torchvisions_voc_detection_reads_the_fixture(fixture_root):
    for split, size in [("train", 24), ("val", 8), ("trainval", 32)]:
        dataset = VOCDetection(str(fixture_root), year="2012", image_set=split)
        assert len(dataset) == size
    image, target = VOCDetection(str(fixture_root), year="2012", image_set="train")[0]
    assert isinstance(image, Image.Image) and image.size == (112, 112) and image.mode == "RGB"
    annotation = target["annotation"]
    assert annotation["size"] == {"width": "112", "height": "112", "depth": "3"}
    assert isinstance(annotation["object"], list) and annotation["object"]
    for obj in annotation["object"]:
        assert obj["name"] == "face" and obj["difficult"] == "0"
        box = {k: int(v) for k, v in obj["bndbox"].items()}
        assert 1 <= box["xmin"] < box["xmax"] <= 112 and 1 <= box["ymin"] < box["ymax"] <= 112


def test_the_fixture_has_several_faces_per_image_and_shared_cells(fixture_root):
    dataset = VOCDetection(
        str(fixture_root),
        year="2012",
        image_set="trainval",
        transforms=detection.DetectionTransform(112, "face"),
    )
    counts, shared = [], 0
    for _, boxes in dataset:
        counts.append(len(boxes))
        centres = ((boxes[:, :2] + boxes[:, 2:]) / 2 * 7).floor().clamp(max=6)
        cells = [tuple(c) for c in centres.long().tolist()]
        shared += len(cells) != len(set(cells))
    assert min(counts) >= 2 and max(counts) <= 6
    assert shared >= 8, f"two faces in one 7 x 7 cell in only {shared} of 32 images"


def test_the_fixture_is_deterministic(tmp_path):
    first = detection.write_detection_fixture(tmp_path / "a", train_size=3, val_size=1, seed=5)
    second = detection.write_detection_fixture(tmp_path / "b", train_size=3, val_size=1, seed=5)
    for path in sorted(first.rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (second / path.relative_to(first)).read_bytes()


def test_the_faces_are_where_the_annotations_say(fixture_root):
    """Inside a face box the skin colour dominates; the annotation is 1-based and inclusive."""
    dataset = VOCDetection(str(fixture_root), year="2012", image_set="train")
    image, target = dataset[1]
    pixels = np.asarray(image).astype(float) / 255
    obj = target["annotation"]["object"][-1]  # drawn last: never covered by another face
    x1, y1 = int(obj["bndbox"]["xmin"]) - 1, int(obj["bndbox"]["ymin"]) - 1
    x2, y2 = int(obj["bndbox"]["xmax"]), int(obj["bndbox"]["ymax"])
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    centre = pixels[cy - 1 : cy + 2, cx - 1 : cx + 2].mean((0, 1))
    assert centre[0] > centre[2], "skin: more red than blue at the centre of the face"


def test_the_transform_scales_boxes_to_fractions_and_drops_other_classes_and_difficult():
    image = Image.new("RGB", (200, 100))
    target = {
        "annotation": {
            "object": [
                {"name": "person", "difficult": "0", "bndbox": {"xmin": "1", "ymin": "11", "xmax": "100", "ymax": "100"}},
                {"name": "dog", "difficult": "0", "bndbox": {"xmin": "5", "ymin": "5", "xmax": "9", "ymax": "9"}},
                {"name": "person", "difficult": "1", "bndbox": {"xmin": "5", "ymin": "5", "xmax": "9", "ymax": "9"}},
            ]
        }
    }  # fmt: skip
    out, boxes = detection.DetectionTransform(64, "person")(image, target)
    assert out.shape == (3, 64, 64) and out.dtype == torch.float32
    assert torch.allclose(boxes, torch.tensor([[0.0, 0.1, 0.5, 1.0]]))
    _, none = detection.DetectionTransform(64, "cat")(image, {"annotation": {"object": []}})
    assert none.shape == (0, 4)


def test_the_loader_falls_back_to_the_fixture_and_reuses_it(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CNNKIT_DOWNLOAD", raising=False)
    dataset = detection.load_detection("val", size=56, root=tmp_path)
    assert "synthetic faces" in capsys.readouterr().out
    image, boxes = dataset[0]
    assert image.shape == (3, 56, 56) and boxes.shape[1] == 4 and len(boxes) >= 2
    assert (boxes >= 0).all() and (boxes <= 1).all()
    marker = tmp_path / "fixtures" / "faces" / "VOCdevkit" / "VOC2012" / "FIXTURE"
    stamp = marker.stat().st_mtime_ns
    detection.load_detection("train", root=tmp_path)
    assert marker.stat().st_mtime_ns == stamp, "an up-to-date fixture is not rewritten"


def test_the_loader_uses_real_voc_when_it_is_there(tmp_path, monkeypatch):
    """A VOC 2012 tree under the data folder is read as it is, class person."""
    monkeypatch.delenv("CNNKIT_DOWNLOAD", raising=False)
    detection.write_detection_fixture(tmp_path, train_size=2, val_size=1)
    dataset = detection.load_detection("train", root=tmp_path)
    assert isinstance(dataset, VOCDetection) and dataset.transforms.name == "person"
    assert not (tmp_path / "fixtures").exists()
    assert len(dataset[0][1]) == 0, "the fixture's faces are not persons"


def test_show_detections_draws_one_panel_per_image_and_column():
    images = torch.rand(2, 3, 32, 32)
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5]])
    panels = {
        "truth": [(boxes, None), (boxes, None)],
        "found": [(boxes, torch.tensor([0.9])), (boxes[:0], torch.zeros(0))],
    }
    fig = detection.show_detections(images, panels)
    assert len(fig.axes) == 4
    assert len(fig.axes[1].patches) == 1 and len(fig.axes[1].texts) == 1
    plt.close(fig)
