"""cnnkit.mvtec: is the fixture in MVTec AD's layout (with more defective than good test
images, and a mask per defect), does the Dataset read that layout (a real category placed
by hand too), and do the loader's choices and the plots do what they say?"""

from __future__ import annotations

import importlib

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from tests.conftest import load_cnnkit  # noqa: E402

cnnkit = load_cnnkit()
mvtec = importlib.import_module(f"{cnnkit.__name__}.mvtec")  # not re-exported by cnnkit


@pytest.fixture(scope="module")
def category(tmp_path_factory):
    root = tmp_path_factory.mktemp("mvtec")
    return mvtec.write_mvtec_fixture(root, train_good=6, test_good=3, test_defects=4)


def test_the_fixture_has_mvtecs_layout_and_imbalance(category):
    assert category.name == "woven"
    assert (category / "FIXTURE").read_text().strip() == mvtec.MVTEC_FIXTURE_VERSION
    assert len(list((category / "train" / "good").glob("*.png"))) == 6
    assert sorted(p.name for p in (category / "test").iterdir()) == ["good", "scratch", "spot"]
    good = len(list((category / "test" / "good").glob("*.png")))
    defective = sum(len(list((category / "test" / d).glob("*.png"))) for d in ("scratch", "spot"))
    assert defective > good
    for defect in ("scratch", "spot"):
        for image in (category / "test" / defect).glob("*.png"):
            mask = Image.open(category / "ground_truth" / defect / f"{image.stem}_mask.png")
            values = np.unique(np.asarray(mask))
            assert mask.mode == "L" and set(values.tolist()) == {0, 255}
            assert Image.open(image).mode == "RGB" and Image.open(image).size == mask.size
    assert not (category / "ground_truth" / "good").exists()


def test_the_dataset_reads_items_with_masks_and_labels(category):
    train = mvtec.MVTecAD(category, "train", size=64)
    test = mvtec.MVTecAD(category, "test", size=64)
    assert len(train) == 6 and len(test) == 11
    assert train.labels.tolist() == [0] * 6
    assert test.labels.tolist() == [0] * 3 + [1] * 8  # good, then scratch and spot
    image, mask, label, defect = test[5]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert 0 <= float(image.min()) and float(image.max()) <= 1
    assert mask.shape == (64, 64) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert label == 1 and defect == "scratch" and mask.sum() > 0
    _, good_mask, good_label, _ = test[0]
    assert good_label == 0 and good_mask.sum() == 0
    with pytest.raises(ValueError):
        mvtec.MVTecAD(category, "val")


def test_a_missing_mask_is_an_error(category, tmp_path):
    import shutil

    copy = tmp_path / "broken"
    shutil.copytree(category, copy)
    next((copy / "ground_truth" / "spot").glob("*.png")).unlink()
    with pytest.raises(FileNotFoundError, match="mask"):
        mvtec.MVTecAD(copy, "test")


def test_category_dir_prefers_real_data_and_falls_back_to_the_fixture(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path))
    real = tmp_path / "mvtec_ad" / "carpet" / "train" / "good"
    assert mvtec.category_dir("carpet", verbose=False).name == "woven"  # no real data yet
    real.mkdir(parents=True)
    assert mvtec.category_dir("carpet", verbose=False) == tmp_path / "mvtec_ad" / "carpet"


def test_as_tensors_spreads_a_subset_over_the_defect_types(category):
    test = mvtec.MVTecAD(category, "test", size=32)
    images, masks, labels, defects = mvtec.as_tensors(test, 4)
    assert images.shape == (4, 3, 32, 32) and masks.shape == (4, 32, 32)
    assert defects[0] == "good" and defects[-1] == "spot" and labels.tolist()[-1] == 1


def test_probability_verdict_and_heatmaps():
    probability = mvtec.defect_probability(torch.tensor([1.0, 2.0, 3.0]), 2.0, 0.5)
    assert probability[1] == 0.5 and probability[0] < 0.5 < probability[2]
    assert mvtec.verdict(0.9).startswith("DEFECT") and mvtec.verdict(0.1).startswith("OK")
    images, maps = torch.rand(2, 3, 16, 16), torch.rand(2, 16, 16)
    masks = torch.zeros(2, 16, 16)
    masks[0, 4:8, 4:8] = 1
    fig = mvtec.show_heatmaps(images, maps, [0.9, 0.2], vmax=1.0, masks=masks, titles=["a", "b"])
    assert "DEFECT" in fig.axes[0].get_title() and "OK" in fig.axes[1].get_title()
    plt.close(fig)


def test_patch_backbone_is_seeded_and_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first, second = mvtec.patch_backbone(seed=4), mvtec.patch_backbone(seed=4)
    assert torch.equal(torch.rand(1), before)  # the caller's random stream is untouched
    x = torch.rand(2, 3, 64, 64)
    l2, l3 = first(x)
    assert l2.shape == (2, 128, 8, 8) and l3.shape == (2, 256, 4, 4)
    assert torch.equal(first(x)[1], second(x)[1])
    assert not torch.equal(mvtec.patch_backbone(seed=5)(x)[1], l3)
    assert not first.training


def test_quantize_int8_copies_and_quantises_only_linear_layers():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 1), torch.nn.Flatten(), torch.nn.Linear(16, 8)
    )
    x = torch.rand(5, 3, 2, 2)
    quantised = mvtec.quantize_int8(model)
    assert type(model[2].weight) is torch.nn.Parameter  # the original stays float32
    assert type(quantised[2].weight).__name__ == "Int8Tensor"
    assert type(quantised[0].weight) is torch.nn.Parameter
    with torch.no_grad():
        torch.testing.assert_close(quantised(x), model(x), rtol=0.05, atol=0.05)
