"""cnnkit.cifar: CIFAR-10 through torchvision's real loader, offline, with a fixture in the real format."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torchvision.datasets
import torchvision.datasets.utils

from tests.conftest import load_cnnkit

cnnkit = load_cnnkit()

# --------------------------------------------------------------------------- the fixture


def test_fixture_is_in_the_real_format_and_passes_the_md5_check(tmp_path, monkeypatch, capsys):
    cnnkit = load_cnnkit()
    monkeypatch.delenv("CNNKIT_DOWNLOAD", raising=False)
    train = cnnkit.load_cifar10(train=True, root=tmp_path)
    test = cnnkit.load_cifar10(train=False, root=tmp_path)
    assert "synthetic fixture" in capsys.readouterr().out
    assert len(train) == 500 and len(test) == 200
    image, label = train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and 0 <= label < 10
    assert train._check_integrity()
    with open(tmp_path / "fixtures" / "cifar-10-batches-py" / "data_batch_1", "rb") as handle:
        entry = pickle.load(handle, encoding="latin1")
    assert (
        entry["data"].dtype == np.uint8
        and entry["data"].shape == (100, 3072)
        and len(entry["labels"]) == 100
    )


def test_fixture_is_deterministic_and_classes_differ(tmp_path):
    cnnkit = load_cnnkit()
    a = cnnkit.write_cifar10_fixture(tmp_path / "a" / "fixtures")
    b = cnnkit.write_cifar10_fixture(tmp_path / "b" / "fixtures")
    assert (a / "data_batch_3").read_bytes() == (b / "data_batch_3").read_bytes()
    data = cnnkit.load_cifar10(train=False, root=tmp_path / "a")
    means = torch.stack([torch.stack([x for x, y in data if y == c]).mean(0) for c in (0, 5)])
    assert (means[0] - means[1]).abs().mean() > 0.02, (
        "classes look different, so a small CNN can learn them"
    )


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory):
    """One default-sized fixture for the tests that only read it (writing one takes ~2 s)."""
    root = tmp_path_factory.mktemp("cifar")
    cnnkit.write_cifar10_fixture(root / "fixtures")
    return root


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.delenv("CNNKIT_DOWNLOAD", raising=False)


def test_fixture_has_balanced_labels_and_the_real_class_names(shared_root, offline):
    train = cnnkit.load_cifar10(train=True, root=shared_root)
    test = cnnkit.load_cifar10(train=False, root=shared_root)
    assert np.bincount(train.targets, minlength=10).tolist() == [50] * 10
    assert np.bincount(test.targets, minlength=10).tolist() == [20] * 10
    assert train.classes == list(cnnkit.CIFAR10_CLASSES), "read from batches.meta by torchvision"
    assert train.class_to_idx["truck"] == 9


def test_fixture_pixels_are_stored_channel_first_as_cifar_does(shared_root, offline):
    """``data`` rows are R plane, G plane, B plane (1024 each, row by row), as in CIFAR-10.

    Read that way, the pattern is smooth across rows and columns and the three channels
    show the same wave; pixels written in another order (HWC) would not be.
    """
    data = cnnkit.load_cifar10(train=True, root=shared_root)
    images = torch.stack([data[i][0] for i in range(40)])
    with open(shared_root / "fixtures" / "cifar-10-batches-py" / "data_batch_1", "rb") as handle:
        raw = pickle.load(handle, encoding="latin1")["data"][0]
    assert torch.equal(
        (images[0] * 255).round().to(torch.uint8), torch.from_numpy(raw.reshape(3, 32, 32))
    ), "the first training image is the first row of data_batch_1"
    order = torch.randperm(3072, generator=torch.Generator().manual_seed(0))
    shuffled = images.flatten(1)[:, order]
    scattered = (shuffled[:, 1:] - shuffled[:, :-1]).abs().mean()
    across_columns = (images[..., 1:] - images[..., :-1]).abs().mean()
    across_rows = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    assert across_columns < 0.5 * scattered and across_rows < 0.5 * scattered
    correlation = np.mean([np.corrcoef(x[0].flatten(), x[1].flatten())[0, 1] for x in images])
    assert correlation > 0.5, "red and green planes of one image show the same pattern"


def test_fixture_is_reused_not_rewritten(shared_root, offline):
    batch = shared_root / "fixtures" / "cifar-10-batches-py" / "test_batch"
    before = batch.stat().st_mtime_ns
    cnnkit.load_cifar10(train=False, root=shared_root)
    assert batch.stat().st_mtime_ns == before


def test_transform_is_applied(shared_root, offline):
    data = cnnkit.load_cifar10(train=False, root=shared_root, transform=lambda image: image.size)
    assert data[0][0] == (32, 32), "the transform receives the PIL image"


def test_root_defaults_to_cnnkit_data(shared_root, offline, monkeypatch, capsys):
    monkeypatch.setenv("CNNKIT_DATA", str(shared_root))
    data = cnnkit.load_cifar10(train=False)
    assert data.root == str(shared_root / "fixtures") and len(data) == 200
    assert str(shared_root) in capsys.readouterr().out


def test_fixture_sizes_and_seed(tmp_path, offline):
    small = cnnkit.write_cifar10_fixture(
        tmp_path / "fixtures", train_per_batch=10, test_size=20, seed=1
    )
    other = cnnkit.write_cifar10_fixture(
        tmp_path / "other", train_per_batch=10, test_size=20, seed=2
    )
    assert small == tmp_path / "fixtures" / "cifar-10-batches-py"
    assert sorted(p.name for p in small.iterdir()) == sorted(
        [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]
    )
    with open(small / "batches.meta", "rb") as handle:
        meta = pickle.load(handle, encoding="latin1")
    assert meta["num_cases_per_batch"] == 10 and meta["num_vis"] == 3072
    assert (small / "test_batch").read_bytes() != (other / "test_batch").read_bytes()
    train = cnnkit.load_cifar10(train=True, root=tmp_path)
    test = cnnkit.load_cifar10(train=False, root=tmp_path)
    assert len(train) == 50 and len(test) == 20, "an existing fixture is used as it is"


# --------------------------------------------------------------------------- real data and download


class _RecordingCIFAR10(torchvision.datasets.CIFAR10):
    """Records how it was built and reads nothing: no real data, no network."""

    calls: list[dict] = []

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        type(self).calls.append({"root": root, "train": train, "download": download})


@pytest.fixture
def recorder(monkeypatch):
    _RecordingCIFAR10.calls = []
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", _RecordingCIFAR10)
    return _RecordingCIFAR10.calls


def test_download_is_asked_for_only_with_cnnkit_download(tmp_path, monkeypatch, recorder):
    monkeypatch.setenv("CNNKIT_DOWNLOAD", "1")
    cnnkit.load_cifar10(train=False, root=tmp_path)
    assert recorder == [{"root": str(tmp_path), "train": False, "download": True}]
    assert not (tmp_path / "fixtures").exists(), "no fixture when downloading"


def test_real_data_is_used_when_its_md5_sums_match(tmp_path, monkeypatch, recorder, capsys):
    checked = []

    def integrity(path, md5=None):
        checked.append((path, md5))
        return True

    monkeypatch.setattr(torchvision.datasets.utils, "check_integrity", integrity)
    monkeypatch.setenv("CNNKIT_DOWNLOAD", "1")
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path))
    cnnkit.load_cifar10(train=True)
    assert recorder == [{"root": str(tmp_path), "train": True, "download": False}]
    real = torchvision.datasets.CIFAR10
    assert [md5 for _, md5 in checked] == [md5 for _, md5 in real.train_list + real.test_list]
    assert all(path.startswith(str(tmp_path / "cifar-10-batches-py")) for path, _ in checked)
    assert "synthetic" not in capsys.readouterr().out
    assert not (tmp_path / "fixtures").exists()


# --------------------------------------------------------------------------- subset


def test_subset_is_a_seeded_permutation_prefix():
    data = list(range(100))
    a, b = cnnkit.subset(data, 10, seed=3), cnnkit.subset(data, 10, seed=3)
    assert len(a) == 10 and list(a) == list(b)
    assert len(set(a)) == 10 and set(a) <= set(data)
    assert list(cnnkit.subset(data, 10, seed=4)) != list(a)
    assert list(a) != list(range(10)), "shuffled, not the first items"
    assert list(cnnkit.subset(data, 20, seed=3))[:10] == list(a), "a larger size extends it"


def test_subset_larger_than_the_data_set_is_all_of_it():
    data = list(range(7))
    assert sorted(cnnkit.subset(data, 50)) == data
    assert len(cnnkit.subset(data, 0)) == 0


def test_a_damaged_fixture_is_rewritten_and_writes_leave_no_staging_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNKIT_DOWNLOAD", raising=False)
    folder = cnnkit.write_cifar10_fixture(tmp_path / "fixtures")
    (folder / "batches.meta").unlink()  # as an interrupted old-style write left it
    dataset = cnnkit.load_cifar10(root=tmp_path)
    assert len(dataset) > 0 and (folder / "batches.meta").is_file()
    assert [p.name for p in (tmp_path / "fixtures").iterdir()] == ["cifar-10-batches-py"]
