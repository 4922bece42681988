"""Run mode, data location, device and seeding."""

from __future__ import annotations

import os
import random
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

# --------------------------------------------------------------------------- run mode


def smoke_mode() -> bool:
    """True in smoke mode (``CNNKIT_SMOKE=1``): tiny data, a few steps, seconds per notebook."""
    return os.environ.get("CNNKIT_SMOKE", "") == "1"


def download_allowed() -> bool:
    return os.environ.get("CNNKIT_DOWNLOAD", "") == "1"


def data_root() -> Path:
    return Path(os.environ.get("CNNKIT_DATA", "data")).expanduser()


def get_device(verbose: bool = True) -> torch.device:
    """CUDA when present, else CPU. TF32 is switched off so results match float32 references.

    In smoke mode torch uses one CPU thread: tiny workloads run steadier that way on a
    shared machine (CI) than with threads competing for the cores.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if smoke_mode():
        torch.set_num_threads(1)
    if device.type == "cuda":
        if hasattr(torch.backends, "fp32_precision"):
            torch.backends.fp32_precision = "ieee"
        else:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
    if verbose:
        name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
        print(f"device: {device} ({name}); smoke mode: {smoke_mode()}")
    return device


def seed_everything(seed: int = 0) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def weights_cache_path(weights) -> Path:
    """Where ``torch.hub`` keeps a torchvision weights entry's file (it may not exist)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def install_fixture(staging: Path, final: Path, version: str) -> Path:
    """Move a fixture written in ``staging`` to ``final`` in one rename, with its version
    in ``FIXTURE``: an older fixture is replaced, and a process that loses the race to
    another writing the same fixture keeps the winner's."""
    import shutil

    (staging / "FIXTURE").write_text(version + "\n")
    if final.exists():  # an older fixture: replace it
        shutil.rmtree(final, ignore_errors=True)
    try:
        staging.rename(final)
    except OSError:  # another process wrote the same fixture first
        shutil.rmtree(staging, ignore_errors=True)
    return final
