"""cnnkit.env: the run-mode switches, the data folder, the device and seeding."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import load_cnnkit

cnnkit = load_cnnkit()


@pytest.fixture
def torch_threads():
    """Restore torch's thread count, which smoke mode changes for the whole process."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


# --------------------------------------------------------------------------- switches


@pytest.mark.parametrize(
    "function, variable",
    [("smoke_mode", "CNNKIT_SMOKE"), ("download_allowed", "CNNKIT_DOWNLOAD")],
)
@pytest.mark.parametrize(
    "value, expected",
    [(None, False), ("1", True), ("0", False), ("", False), ("true", False), (" 1", False)],
)
def test_switches_are_on_only_for_exactly_1(monkeypatch, function, variable, value, expected):
    if value is None:
        monkeypatch.delenv(variable, raising=False)
    else:
        monkeypatch.setenv(variable, value)
    assert getattr(cnnkit, function)() is expected


def test_switches_are_read_at_call_time_and_independent(monkeypatch):
    monkeypatch.setenv("CNNKIT_SMOKE", "1")
    monkeypatch.delenv("CNNKIT_DOWNLOAD", raising=False)
    assert cnnkit.smoke_mode() and not cnnkit.download_allowed()
    monkeypatch.setenv("CNNKIT_DOWNLOAD", "1")
    monkeypatch.setenv("CNNKIT_SMOKE", "0")
    assert cnnkit.download_allowed() and not cnnkit.smoke_mode()


def test_data_root_defaults_to_data(monkeypatch):
    monkeypatch.delenv("CNNKIT_DATA", raising=False)
    assert cnnkit.data_root() == Path("data")


def test_data_root_honours_cnnkit_data_and_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "sets"))
    assert cnnkit.data_root() == tmp_path / "sets"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CNNKIT_DATA", "~/cifar")
    assert cnnkit.data_root() == tmp_path / "cifar"
    assert isinstance(cnnkit.data_root(), Path)


# --------------------------------------------------------------------------- device


def test_get_device_is_cpu_without_cuda_and_says_so(monkeypatch, capsys, no_cuda, torch_threads):
    monkeypatch.delenv("CNNKIT_SMOKE", raising=False)
    device = cnnkit.get_device()
    assert device == torch.device("cpu")
    assert capsys.readouterr().out.strip() == "device: cpu (CPU); smoke mode: False"
    assert torch.get_num_threads() == torch_threads, "threads untouched outside smoke mode"


def test_get_device_is_quiet_when_not_verbose(monkeypatch, capsys, no_cuda, torch_threads):
    monkeypatch.delenv("CNNKIT_SMOKE", raising=False)
    assert cnnkit.get_device(verbose=False).type == "cpu"
    assert capsys.readouterr().out == ""


def test_smoke_mode_uses_one_thread(monkeypatch, capsys, no_cuda, torch_threads):
    monkeypatch.setenv("CNNKIT_SMOKE", "1")
    torch.set_num_threads(2)
    cnnkit.get_device()
    assert torch.get_num_threads() == 1
    assert "smoke mode: True" in capsys.readouterr().out


def test_cuda_device_switches_tf32_off(monkeypatch, capsys, torch_threads):
    """The CUDA branch, simulated: the device is cuda and float32 matmuls are IEEE, not TF32."""
    monkeypatch.delenv("CNNKIT_SMOKE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Fake GPU")
    new_api = hasattr(torch.backends, "fp32_precision")  # torch mixes the two APIs badly
    if new_api:
        monkeypatch.setattr(torch.backends, "fp32_precision", "tf32")
    else:
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    device = cnnkit.get_device()
    assert device == torch.device("cuda")
    assert capsys.readouterr().out.strip() == "device: cuda (Fake GPU); smoke mode: False"
    if new_api:
        assert torch.backends.fp32_precision == "ieee"
    else:
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32


# --------------------------------------------------------------------------- seeding


def _draws() -> tuple[float, np.ndarray, torch.Tensor]:
    return random.random(), np.random.rand(4), torch.randn(4)


def test_seed_everything_makes_random_numpy_and_torch_reproducible():
    cnnkit.seed_everything(123)
    first = _draws()
    _draws()  # move every generator on
    cnnkit.seed_everything(123)
    again = _draws()
    assert first[0] == again[0]
    assert np.array_equal(first[1], again[1])
    assert torch.equal(first[2], again[2])


def test_seed_everything_seeds_differ_and_default_is_zero():
    cnnkit.seed_everything(1)
    one = _draws()
    cnnkit.seed_everything(2)
    two = _draws()
    assert one[0] != two[0]
    assert not np.array_equal(one[1], two[1])
    assert not torch.equal(one[2], two[2])
    cnnkit.seed_everything()
    default = _draws()
    cnnkit.seed_everything(0)
    zero = _draws()
    assert default[0] == zero[0] and torch.equal(default[2], zero[2])


def test_seed_everything_makes_model_initialisation_reproducible():
    cnnkit.seed_everything(7)
    a = torch.nn.Conv2d(3, 4, 3)
    cnnkit.seed_everything(7)
    b = torch.nn.Conv2d(3, 4, 3)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
