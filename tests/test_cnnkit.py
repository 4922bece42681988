"""Does the shared helper load CIFAR-10 through torchvision's real loader, offline?"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from conftest import load_cnnkit


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


def test_check_close_reports_the_error():
    cnnkit = load_cnnkit()
    cnnkit.check_close(torch.ones(2), torch.ones(2), name="same")
    try:
        cnnkit.check_close(torch.ones(2), torch.zeros(2), name="off")
    except AssertionError as exc:
        assert "max abs error 1.00e+00" in str(exc)
    else:
        raise AssertionError("check_close accepted different tensors")


def test_check_close_honours_tolerances_for_python_scalars():
    cnnkit = load_cnnkit()
    cnnkit.check_close(0.30000001192092896, 0.3, "float32 metric")
    cnnkit.check_close(3, 3, "int")
    with pytest.raises(AssertionError, match="expected 0.3"):
        cnnkit.check_close(0.303, 0.3, "1% off")
    with pytest.raises(AssertionError):
        cnnkit.check_close(4, 3, "int off by one")
