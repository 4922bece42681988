"""CIFAR-10: the real torchvision loader, or an offline fixture in the real on-disk format."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import torch

from .env import data_root, download_allowed

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
    final = Path(root) / "cifar-10-batches-py"
    final.parent.mkdir(parents=True, exist_ok=True)
    # Written in a staging folder and renamed: an interrupted write, or two notebooks
    # sharing a data folder, never leave a half-written fixture behind.
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix=".cifar-fixture-", dir=final.parent))
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
    if final.exists():
        shutil.rmtree(final, ignore_errors=True)
    try:
        folder.rename(final)
    except OSError:  # another process renamed its complete copy first
        shutil.rmtree(folder, ignore_errors=True)
    return final


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
    from torchvision.datasets.utils import check_integrity

    root = Path(root or data_root())
    transform = transform or transforms.ToTensor()
    folder = root / CIFAR10.base_folder
    if all(
        check_integrity(str(folder / name), md5)
        for name, md5 in CIFAR10.train_list + CIFAR10.test_list
    ):
        return CIFAR10(root=str(root), train=train, download=False, transform=transform)
    if download_allowed():
        return CIFAR10(root=str(root), train=train, download=True, transform=transform)
    fixture_root = root / "fixtures"
    folder = fixture_root / "cifar-10-batches-py"
    needed = ["batches.meta", "test_batch", *(f"data_batch_{i}" for i in range(1, 6))]
    if not all((folder / name).is_file() for name in needed):  # absent, or from an old writer
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
