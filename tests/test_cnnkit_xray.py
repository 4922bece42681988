"""cnnkit.xray: is the fixture Kermany's layout that torchvision's ImageFolder reads, does it
hold what the lab needs (grayscale films, about 1 : 3 imbalance, a visible opacity in the
positive class), and do the loader's choices, the transform and the helpers do what they say?"""

from __future__ import annotations

import importlib

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.datasets import ImageFolder  # noqa: E402

from tests.conftest import load_cnnkit  # noqa: E402

cnnkit = load_cnnkit()
xray = importlib.import_module(f"{cnnkit.__name__}.xray")  # not re-exported by cnnkit

COUNTS = {"train": (6, 18), "val": (2, 2), "test": (4, 8)}


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("xray")
    xray.write_xray_fixture(root, counts=COUNTS, size=64)
    return root


def test_image_folder_reads_the_fixture(fixture_root):
    for split, (normal, pneumonia) in COUNTS.items():
        dataset = ImageFolder(str(fixture_root / "chest_xray" / split))
        assert dataset.classes == ["NORMAL", "PNEUMONIA"]
        assert dataset.class_to_idx == {"NORMAL": 0, "PNEUMONIA": 1}
        assert np.bincount(dataset.targets).tolist() == [normal, pneumonia]
    files = sorted((fixture_root / "chest_xray" / "train" / "PNEUMONIA").iterdir())
    assert all(f.suffix == ".jpeg" for f in files)
    with Image.open(files[0]) as image:
        assert image.format == "JPEG" and image.mode == "L" and image.size == (64, 64)


def test_the_default_fixture_is_imbalanced_about_one_to_three():
    normal, pneumonia = xray.FIXTURE_COUNTS["train"]
    assert 2.5 <= pneumonia / normal <= 3.5


def test_pneumonia_films_have_a_brighter_lung(fixture_root):
    """The opacity brightens one lung field: the brighter lung of a pneumonia film is
    brighter, on average, than that of a normal film."""
    rng = np.random.default_rng(3)

    def brighter_lung(pneumonia: bool) -> float:
        image, lungs = xray._chest(rng, 96)
        if pneumonia:
            xray._opacity(rng, image, lungs)
        yy, xx = np.mgrid[0:96, 0:96] + 0.5
        means = [
            image[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1].mean()
            for cx, cy, rx, ry in lungs
        ]
        return max(means) - min(means)

    normal = np.mean([brighter_lung(False) for _ in range(20)])
    sick = np.mean([brighter_lung(True) for _ in range(20)])
    assert sick > normal + 0.05


def test_the_fixture_is_deterministic(tmp_path):
    counts = {"train": (1, 2)}
    first = xray.write_xray_fixture(tmp_path / "a", counts=counts, size=32, seed=5)
    second = xray.write_xray_fixture(tmp_path / "b", counts=counts, size=32, seed=5)
    for path in sorted(first.rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (second / path.relative_to(first)).read_bytes()


def test_the_transform_gives_three_equal_normalised_channels(fixture_root):
    dataset = ImageFolder(
        str(fixture_root / "chest_xray" / "train"), transform=xray.xray_transform(48)
    )
    image, label = dataset[0]
    assert image.shape == (3, 48, 48) and image.dtype == torch.float32 and label == 0
    restored = xray.denormalize(image)
    assert torch.allclose(restored[0], restored[1], atol=1e-5)
    assert torch.allclose(restored[1], restored[2], atol=1e-5)
    assert 0 <= float(restored.min()) and float(restored.max()) <= 1


def test_the_loader_falls_back_to_the_fixture_and_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(xray, "FIXTURE_COUNTS", COUNTS)
    dataset = xray.load_xray("test", 32, root=tmp_path)
    assert "synthetic" in capsys.readouterr().out
    assert len(dataset) == 12 and dataset.classes == ["NORMAL", "PNEUMONIA"]
    marker = tmp_path / "fixtures" / "xray" / "chest_xray" / "FIXTURE"
    assert marker.read_text().strip() == xray.XRAY_FIXTURE_VERSION


def test_the_loader_prefers_real_data(fixture_root, tmp_path, capsys):
    real = tmp_path / "chest_xray"
    for split in ("train", "test"):
        for label in ("NORMAL", "PNEUMONIA"):
            (real / split / label).mkdir(parents=True)
            source = next((fixture_root / "chest_xray" / split / label).iterdir())
            (real / split / label / source.name).write_bytes(source.read_bytes())
    dataset = xray.load_xray("train", 32, root=tmp_path)
    assert capsys.readouterr().out == "" and len(dataset) == 2
    assert dataset.root == str(real / "train")


def test_save_weights_file_writes_a_loadable_state(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    path = xray.save_weights_file(net, tmp_path / "checkpoints" / "net-0123.pth")
    copy = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    copy.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(copy[0].weight, net[0].weight)
    half = torch.load(xray.save_weights_file(net, tmp_path / "half.pth", half=True))
    assert (
        half["0.weight"].dtype == torch.float16
        and half["1.num_batches_tracked"].dtype == torch.int64
    )


def test_show_saliency_draws_two_rows(fixture_root):
    images = torch.randn(3, 3, 16, 16)
    cams = torch.rand(3, 16, 16)
    cams[1] = 0  # an empty map is drawn, not divided by zero
    fig = xray.show_saliency(images, cams, ["a", "b", "c"])
    assert len(fig.axes) >= 6
    plt.close(fig)
