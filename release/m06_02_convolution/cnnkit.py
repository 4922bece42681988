"""cnnkit: the helpers every notebook of the CNN module shares.

Device and seeding, data sets (the real torchvision loaders, with offline
fixtures written in the real on-disk formats), plotting, and the small checks
used by the visible test cells. It ships in every release folder; notebooks
import it as ``import cnnkit``.

Environment switches:
- ``CNNKIT_SMOKE=1``: smoke mode, tiny data and a few steps (what CI runs).
- ``CNNKIT_DOWNLOAD=1``: download the real data sets when they are missing.
- ``CNNKIT_DATA=DIR``: where data sets live (default ``./data``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
from pathlib import Path

import numpy as np
import torch

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


# --------------------------------------------------------------------------- run mode


def smoke_mode() -> bool:
    """True in smoke mode (``CNNKIT_SMOKE=1``): tiny data, a few steps, seconds per notebook."""
    return os.environ.get("CNNKIT_SMOKE", "") == "1"


def download_allowed() -> bool:
    return os.environ.get("CNNKIT_DOWNLOAD", "") == "1"


def data_root() -> Path:
    return Path(os.environ.get("CNNKIT_DATA", "data")).expanduser()


def get_device(verbose: bool = True) -> torch.device:
    """CUDA when present, else CPU. TF32 is switched off so results match float32 references."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
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


# --------------------------------------------------------------------------- CIFAR-10


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _cifar_pattern(label: int, rng: np.random.Generator) -> np.ndarray:
    """A 32x32 RGB image whose class shows in its orientation, frequency and colour."""
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    angle = np.pi * (label % 5) / 5 + rng.normal(0, 0.08)
    frequency = 0.25 + 0.12 * (label // 5) + rng.normal(0, 0.01)
    phase = rng.uniform(0, 2 * np.pi)
    wave = np.sin(frequency * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
    colour = (
        np.array([(label * 37) % 255, (label * 91) % 255, (label * 53) % 255], np.float32) / 255
    )
    image = (
        0.5 + 0.35 * wave[None] * (0.4 + colour[:, None, None]) + rng.normal(0, 0.06, (3, 32, 32))
    )
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_cifar10_fixture(
    root: str | Path, train_per_batch: int = 100, test_size: int = 200, seed: int = 0
) -> Path:
    """Write a tiny CIFAR-10 in the real ``cifar-10-batches-py`` format; returns its folder.

    Five training batches and a test batch of pickled dicts (``data``: uint8
    ``(N, 3072)``, ``labels``, ``filenames``, ``batch_label``) and ``batches.meta``,
    exactly as torchvision's ``CIFAR10`` reads them.
    """
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for index, name in enumerate(names):
        size = test_size if name == "test_batch" else train_per_batch
        labels = [int(x) for x in rng.permutation(np.arange(size) % 10)]
        data = np.stack([_cifar_pattern(label, rng).reshape(-1) for label in labels])
        entry = {
            "batch_label": f"fixture batch {index + 1}",
            "labels": labels,
            "data": data,
            "filenames": [f"fixture_{index}_{i}.png" for i in range(size)],
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(entry, handle, protocol=2)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(
            {
                "label_names": list(CIFAR10_CLASSES),
                "num_cases_per_batch": train_per_batch,
                "num_vis": 3072,
            },
            handle,
            protocol=2,
        )
    return folder


def _fixture_cifar10_class(folder: Path):
    """torchvision's CIFAR10 with the fixture's md5 sums, so its integrity check passes."""
    from torchvision.datasets import CIFAR10

    class FixtureCIFAR10(CIFAR10):
        train_list = [[f"data_batch_{i}", _md5(folder / f"data_batch_{i}")] for i in range(1, 6)]
        test_list = [["test_batch", _md5(folder / "test_batch")]]
        meta = {
            "filename": "batches.meta",
            "key": "label_names",
            "md5": _md5(folder / "batches.meta"),
        }

    return FixtureCIFAR10


def load_cifar10(train: bool = True, transform=None, root: str | Path | None = None):
    """CIFAR-10 through torchvision's real loader.

    Uses the real data set under ``root`` (default ``data_root()``) when it is
    there, downloads it when ``CNNKIT_DOWNLOAD=1``, and otherwise falls back,
    visibly, to a small synthetic fixture in the same on-disk format.
    """
    from torchvision import transforms
    from torchvision.datasets import CIFAR10

    root = Path(root or data_root())
    transform = transform or transforms.ToTensor()
    real = (
        CIFAR10(root=str(root), train=train, download=False, transform=transform)
        if (root / "cifar-10-batches-py").exists()
        else None
    )
    if real is not None and real._check_integrity():
        return real
    if download_allowed():
        return CIFAR10(root=str(root), train=train, download=True, transform=transform)
    fixture_root = root / "fixtures"
    folder = fixture_root / "cifar-10-batches-py"
    if not (folder / "test_batch").exists():
        write_cifar10_fixture(fixture_root)
    dataset = _fixture_cifar10_class(folder)(
        root=str(fixture_root), train=train, download=False, transform=transform
    )
    print(
        f"CIFAR-10: real data not found under {root}; using the synthetic fixture ({len(dataset)} images). Set CNNKIT_DOWNLOAD=1 for the real data set."
    )
    return dataset


def subset(dataset, size: int, seed: int = 0):
    """The first ``size`` items of a seeded permutation (all of them if fewer)."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:size]
    return torch.utils.data.Subset(dataset, order.tolist())


# --------------------------------------------------------------------------- plotting


def show_images(
    images: torch.Tensor, titles=None, ncols: int = 8, scale: float = 1.6, cmap: str | None = None
):
    """Plot a batch ``(N, C, H, W)`` (C = 1 or 3, values roughly in [0, 1]) as a grid."""
    import matplotlib.pyplot as plt

    images = images.detach().cpu()
    count = images.shape[0]
    nrows = (count + ncols - 1) // ncols
    fig, axes = plt.subplots(
        nrows, min(ncols, count), figsize=(scale * min(ncols, count), scale * nrows), squeeze=False
    )
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < count:
            image = images[index]
            if image.shape[0] == 3:
                ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
            else:
                ax.imshow(image[0].numpy(), cmap=cmap or "viridis")
            if titles is not None:
                ax.set_title(str(titles[index]), fontsize=8)
    fig.tight_layout()
    return fig


def show_feature_maps(maps: torch.Tensor, title: str = "", max_maps: int = 16, ncols: int = 8):
    """Plot the channels of one feature map ``(C, H, W)``, each with its own colour scale."""
    maps = maps.detach().cpu()[:max_maps]
    fig = show_images(
        maps.unsqueeze(1),
        titles=[f"ch {i}" for i in range(maps.shape[0])],
        ncols=ncols,
        cmap="magma",
    )
    if title:
        fig.suptitle(title, y=1.02)
    return fig


# --------------------------------------------------------------------------- visible checks


def max_error(actual, expected) -> float:
    actual = (
        torch.as_tensor(np.asarray(actual) if not isinstance(actual, torch.Tensor) else actual)
        .double()
        .cpu()
    )
    expected = (
        torch.as_tensor(
            np.asarray(expected) if not isinstance(expected, torch.Tensor) else expected
        )
        .double()
        .cpu()
    )
    return float((actual - expected).abs().max()) if actual.numel() else 0.0


def check_close(
    actual, expected, name: str = "check", atol: float = 1e-4, rtol: float = 1e-4
) -> None:
    """Assert that two tensors (or arrays) agree in shape and value; print a tick when they do."""
    if isinstance(expected, torch.Tensor | np.ndarray):
        assert tuple(actual.shape) == tuple(expected.shape), (
            f"{name}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
        )
        a = (
            torch.as_tensor(np.asarray(actual) if isinstance(actual, np.ndarray) else actual)
            .double()
            .cpu()
        )
        e = (
            torch.as_tensor(np.asarray(expected) if isinstance(expected, np.ndarray) else expected)
            .double()
            .cpu()
        )
        ok = bool(torch.isfinite(a).all()) and torch.allclose(a, e, atol=atol, rtol=rtol)
        assert ok, (
            f"{name}: max abs error {max_error(a, e):.2e} (allowed {atol:.0e} + {rtol:.0e}*|expected|)"
        )
    else:
        assert actual == expected, f"{name}: got {actual!r}, expected {expected!r}"
    print(f"✓ {name}")
