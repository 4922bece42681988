"""cnnkit.voc: the pair transform, colours, the loader's choices, instances and the plot.

The fixture's format, the palette's known colours, the fixture's determinism and
``voc_instances`` on the fixture are tested in test_solutions_segmentation.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torchvision.datasets  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.transforms import functional as TF  # noqa: E402

from tests.conftest import load_cnnkit  # noqa: E402

cnnkit = load_cnnkit()


def _palette_png(labels: np.ndarray) -> Image.Image:
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    png = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
    png.putpalette(cnnkit.voc_palette().reshape(-1).tolist())
    return png


def _pair() -> tuple[Image.Image, Image.Image]:
    """A black and white image and a mask of classes 0, 7, 15 with a void (255) outline."""
    image = np.zeros((30, 40, 3), np.uint8)
    image[:, 20:] = 255
    labels = np.zeros((30, 40), np.uint8)
    labels[5:20, 5:18], labels[8:25, 22:35] = 7, 15
    labels[4, 4:19] = labels[20, 4:19] = 255
    labels[4:21, 4] = labels[4:21, 18] = 255
    return Image.fromarray(image), _palette_png(labels)


# --------------------------------------------------------------------------- VOCPairTransform


@pytest.mark.parametrize("mode", ["P", "L"])
def test_pair_transform_resizes_masks_with_nearest_neighbours_and_keeps_void(mode):
    """VOC masks are palette PNGs, which PIL always resizes with nearest neighbours; a
    greyscale mask shows that the transform asks for nearest neighbours itself."""
    image, mask = _pair()
    mask = mask if mode == "P" else Image.fromarray(np.array(mask))
    assert mask.mode == mode
    out_image, out_mask = cnnkit.VOCPairTransform((17, 23))(image, mask)
    assert out_image.shape == (3, 17, 23) and out_image.dtype == torch.float32
    assert out_mask.shape == (17, 23) and out_mask.dtype == torch.int64
    assert set(out_mask.unique().tolist()) == {0, 7, 15, 255}, "no blended labels, 255 kept"
    assert 0 <= out_image.min() and out_image.max() <= 1
    grey = ((out_image > 0.05) & (out_image < 0.95)).any()
    assert grey, "the image is resized bilinearly: its black/white edge blends"
    nearest = TF.resize(mask, [17, 23], interpolation=TF.InterpolationMode.NEAREST)
    assert torch.equal(out_mask, torch.as_tensor(np.array(nearest), dtype=torch.int64))


def test_pair_transform_without_size_only_converts():
    image, mask = _pair()
    out_image, out_mask = cnnkit.VOCPairTransform()(image, mask)
    assert out_image.shape == (3, 30, 40)
    assert torch.equal(out_image, TF.to_tensor(image))
    assert torch.equal(out_mask, torch.from_numpy(np.array(mask)).long())
    assert (out_mask == 255).sum() == (np.array(mask) == 255).sum()


def test_pair_transform_upsampling_keeps_the_label_set():
    image, mask = _pair()
    out_image, out_mask = cnnkit.VOCPairTransform((67, 83))(image, mask)
    assert out_image.shape == (3, 67, 83)
    assert set(out_mask.unique().tolist()) == {0, 7, 15, 255}


# --------------------------------------------------------------------------- colours


def test_colorize_mask_looks_up_the_palette():
    palette = cnnkit.voc_palette()
    mask = torch.tensor([[0, 1, 15], [255, 20, 7]])
    rgb = cnnkit.colorize_mask(mask)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb, palette[mask.numpy()])
    assert rgb[1, 0].tolist() == [224, 224, 192], "void is cream"
    assert rgb[0, 0].tolist() == [0, 0, 0], "background is black"


def test_colorize_mask_clips_out_of_range_labels():
    rgb = cnnkit.colorize_mask(torch.tensor([[-1, 300]]))
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [224, 224, 192]


def test_voc_palette_gives_the_classes_distinct_colours():
    palette = cnnkit.voc_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert len({tuple(c) for c in palette[:21]}) == 21
    assert len(cnnkit.VOC_CLASSES) == 21 and cnnkit.VOC_CLASSES[15] == "person"


# --------------------------------------------------------------------------- the loader's choices


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.delenv("CNNKIT_DOWNLOAD", raising=False)


def test_data_found_under_cnnkit_data_is_used_as_real_data(tmp_path, monkeypatch, offline, capsys):
    """A VOCdevkit under ``data_root()`` is read as it is: no fixture, no message."""
    cnnkit.write_voc_fixture(tmp_path, train_size=3, val_size=2)
    capsys.readouterr()
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path))
    val = cnnkit.load_voc_segmentation("val", size=(20, 24))
    assert len(val) == 2 and val.images[0].startswith(str(tmp_path / "VOCdevkit"))
    image, mask = val[0]
    assert image.shape == (3, 20, 24) and mask.shape == (20, 24)
    assert "synthetic" not in capsys.readouterr().out
    assert not (tmp_path / "fixtures").exists()


def test_a_current_fixture_is_reused(tmp_path, offline, capsys):
    cnnkit.write_voc_fixture(tmp_path / "fixtures", train_size=3, val_size=2)
    train = cnnkit.load_voc_segmentation("train", root=tmp_path)
    assert len(train) == 3, "the small fixture was not rewritten"
    assert "using the synthetic fixture (3 train images)" in capsys.readouterr().out


def test_an_outdated_fixture_is_replaced(tmp_path, offline):
    folder = cnnkit.write_voc_fixture(tmp_path / "fixtures", train_size=3, val_size=2)
    (folder / "FIXTURE").write_text("voc-fixture-0\n")
    train = cnnkit.load_voc_segmentation("train", root=tmp_path)
    assert len(train) == 64
    assert (folder / "FIXTURE").read_text().strip() == cnnkit.VOC_FIXTURE_VERSION
    assert len(list((folder / "JPEGImages").iterdir())) == 64 + 24
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".voc-staging-")]


def test_download_is_asked_for_only_with_cnnkit_download(tmp_path, monkeypatch):
    calls = []

    class Recording(torchvision.datasets.VOCSegmentation):
        def __init__(self, root, **kwargs):
            calls.append({"root": root, **kwargs})

    monkeypatch.setattr(torchvision.datasets, "VOCSegmentation", Recording)
    monkeypatch.setenv("CNNKIT_DOWNLOAD", "1")
    cnnkit.load_voc_segmentation("val", size=(8, 8), root=tmp_path)
    assert len(calls) == 1 and calls[0]["download"] is True
    assert calls[0]["root"] == str(tmp_path) and calls[0]["image_set"] == "val"
    assert calls[0]["year"] == "2012"
    assert isinstance(calls[0]["transforms"], cnnkit.VOCPairTransform)
    assert calls[0]["transforms"].size == (8, 8)
    assert not (tmp_path / "fixtures").exists()


# --------------------------------------------------------------------------- the fixture's files


def test_fixture_files_agree_with_each_other(tmp_path):
    """Every image has both masks at its size, and void pixels are the same in both masks."""
    folder = cnnkit.write_voc_fixture(tmp_path, train_size=4, val_size=3, seed=5)
    splits = folder / "ImageSets" / "Segmentation"
    train = (splits / "train.txt").read_text().split()
    val = (splits / "val.txt").read_text().split()
    assert len(train) == 4 and len(val) == 3 and not set(train) & set(val)
    assert (splits / "trainval.txt").read_text().split() == train + val
    for image_id in train + val:
        image = Image.open(folder / "JPEGImages" / f"{image_id}.jpg")
        classes = Image.open(folder / "SegmentationClass" / f"{image_id}.png")
        objects = Image.open(folder / "SegmentationObject" / f"{image_id}.png")
        assert image.mode == "RGB" and classes.mode == objects.mode == "P"
        assert image.size == classes.size == objects.size
        classes, objects = np.array(classes), np.array(objects)
        assert np.array_equal(classes == 255, objects == 255)
        assert np.array_equal(classes == 0, objects == 0), "objects cover exactly the classes"
        assert (classes == 255).any(), "object outlines are void"


def test_rewriting_a_fixture_replaces_it(tmp_path):
    cnnkit.write_voc_fixture(tmp_path / "a", train_size=2, val_size=1, seed=1)
    cnnkit.write_voc_fixture(tmp_path / "a", train_size=2, val_size=1, seed=2)
    fresh = cnnkit.write_voc_fixture(tmp_path / "b", train_size=2, val_size=1, seed=2)
    name = "SegmentationClass/2012_000001.png"
    folder = tmp_path / "a" / "VOCdevkit" / "VOC2012"
    assert (folder / name).read_bytes() == (fresh / name).read_bytes()
    assert sorted(p.name for p in folder.parent.iterdir()) == ["VOC2012"], "no staging left"


# --------------------------------------------------------------------------- voc_instances


def _write_masks(folder, classes: np.ndarray, objects: np.ndarray):
    for name, labels in (("SegmentationClass", classes), ("SegmentationObject", objects)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        _palette_png(labels).save(folder / name / "x.png")
    return SimpleNamespace(targets=[str(folder / "SegmentationClass" / "x.png")])


def test_voc_instances_of_hand_made_masks(tmp_path):
    classes = np.zeros((6, 8), np.uint8)
    objects = np.zeros((6, 8), np.uint8)
    classes[0:2, 0:3], objects[0:2, 0:3] = 7, 1
    classes[3:6, 0:3], objects[3:6, 0:3] = 7, 2
    classes[1:5, 5:8], objects[1:5, 5:8] = 15, 3
    classes[0, 5:8] = objects[0, 5:8] = 255  # void: not an instance
    masks, labels = cnnkit.voc_instances(_write_masks(tmp_path, classes, objects), 0)
    assert masks.dtype == torch.bool and masks.shape == (3, 6, 8)
    assert labels.dtype == torch.int64 and labels.tolist() == [7, 7, 15]
    for index, instance in enumerate((1, 2, 3)):
        assert np.array_equal(masks[index].numpy(), objects == instance)


def test_voc_instances_of_an_image_without_objects(tmp_path):
    empty = np.zeros((5, 4), np.uint8)
    empty[0] = 255
    masks, labels = cnnkit.voc_instances(_write_masks(tmp_path, empty, empty), 0)
    assert masks.shape == (0, 5, 4) and masks.dtype == torch.bool
    assert labels.shape == (0,) and labels.dtype == torch.int64


# --------------------------------------------------------------------------- show_segmentations


def test_show_segmentations_draws_one_row_per_image():
    images = torch.rand(2, 3, 6, 7)
    truth = torch.randint(0, 21, (2, 6, 7))
    truth[:, 0] = 255
    prediction = torch.randint(0, 21, (2, 6, 7))
    fig = cnnkit.show_segmentations(images, {"truth": truth, "prediction": prediction})
    try:
        assert len(fig.axes) == 6
        axes = np.array(fig.axes).reshape(2, 3)
        assert [ax.get_title() for ax in axes[0]] == ["image", "truth", "prediction"]
        assert all(not ax.axison for ax in fig.axes)
        assert np.allclose(axes[1, 0].images[0].get_array(), images[1].permute(1, 2, 0).numpy())
        assert np.array_equal(axes[1, 1].images[0].get_array(), cnnkit.colorize_mask(truth[1]))
        assert np.array_equal(axes[0, 2].images[0].get_array(), cnnkit.colorize_mask(prediction[0]))
        fig.canvas.draw()
    finally:
        plt.close(fig)
