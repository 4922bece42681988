"""Chest X-rays (Lab 3): the Kermany pneumonia layout read by ``ImageFolder``, an offline
fixture in that layout, a weights-file helper and saliency plots.

Import it as ``from cnnkit import xray``. The layout is Kaggle's "Chest X-Ray Images
(Pneumonia)" (Kermany et al. 2018): ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg``,
grayscale JPEGs. ``ImageFolder`` numbers the sorted folder names, so NORMAL is class 0 and
PNEUMONIA class 1 (the positive class).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .env import data_root, install_fixture

XRAY_FIXTURE_VERSION = "xray-fixture-2"
CLASSES = ("NORMAL", "PNEUMONIA")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# (NORMAL, PNEUMONIA) images per split: about 1:3 in train as in Kermany's 1341:3875.
FIXTURE_COUNTS = {"train": (80, 240), "val": (8, 8), "test": (40, 80)}


def _chest(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list]:
    """A synthetic frontal chest film in [0, 1]: body, two dark lung fields with ribs, the
    spine and the heart's shadow. Returns the image and the two lungs' ellipses
    ``(cx, cy, rx, ry)`` in pixels."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    u, v = xx / size, yy / size
    body = np.exp(-(((u - 0.5) / 0.42) ** 6) - ((v - 0.55) / 0.55) ** 6)
    image = 0.08 + rng.uniform(0.45, 0.6) * body
    lungs = []
    tilt = rng.uniform(-0.02, 0.02)
    for side in (-1, 1):
        cx = 0.5 + side * rng.uniform(0.17, 0.21)
        cy, rx, ry = rng.uniform(0.47, 0.53) + side * tilt, rng.uniform(0.12, 0.15), 0.27
        inside = ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2
        field = np.clip(1.2 - inside, 0, 1) ** 0.6
        image = image - rng.uniform(0.28, 0.36) * field
        lungs.append((cx * size, cy * size, rx * size, ry * size))
    ribs = 0.5 + 0.5 * np.sin(2 * np.pi * (v * rng.uniform(7.5, 9.0) + 0.6 * (u - 0.5) ** 2))
    image = image + 0.06 * ribs * body
    image = image + 0.25 * np.exp(-(((u - 0.5) / 0.045) ** 2)) * body  # the spine
    heart = np.exp(-(((u - 0.55) / 0.12) ** 2) - ((v - 0.68) / 0.1) ** 2)
    image = image + 0.2 * heart
    return image, lungs


def _opacity(rng: np.random.Generator, image: np.ndarray, lungs: list) -> None:
    """Add one or two soft bright patches (a consolidation, lobar-sized) inside one lung, in place."""
    size = image.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    cx, cy, rx, ry = lungs[int(rng.integers(0, 2))]
    for _ in range(int(rng.integers(1, 3))):
        px = cx + rng.uniform(-0.5, 0.5) * rx
        py = cy + rng.uniform(-0.2, 0.6) * ry
        radius = rng.uniform(0.1, 0.18) * size
        patch = np.exp(-(((xx - px) ** 2 + (yy - py) ** 2) / (2 * radius**2)))
        mottle = 0.75 + 0.25 * rng.random((size, size))
        image += rng.uniform(0.4, 0.6) * patch * mottle


def fixture_image(rng: np.random.Generator, size: int, pneumonia: bool) -> np.ndarray:
    """One ``(size, size)`` uint8 grayscale film; a pneumonia film has an opacity."""
    image, lungs = _chest(rng, size)
    if pneumonia:
        _opacity(rng, image, lungs)
    image = image * rng.uniform(0.85, 1.15) + rng.uniform(-0.05, 0.05)  # exposure
    image = image + rng.normal(0, 0.025, image.shape)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_xray_fixture(
    root: str | Path, counts: dict | None = None, size: int = 128, seed: int = 0
) -> Path:
    """Write a small synthetic chest X-ray set in Kermany's layout; returns its folder.

    ``root/chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg``, grayscale JPEGs, about
    three pneumonia films per normal one in train; every pneumonia film has a visible
    opacity in one lung. File names follow Kaggle's (``IM-0001-0001.jpeg``,
    ``person1_bacteria_1.jpeg``).
    """
    import tempfile

    from PIL import Image

    counts = FIXTURE_COUNTS if counts is None else counts
    final = Path(root) / "chest_xray"
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=".xray-staging-"))
    rng = np.random.default_rng(seed)
    person = 0
    for split, (normal, pneumonia) in counts.items():
        for label, count in zip(CLASSES, (normal, pneumonia)):
            folder = staging / split / label
            folder.mkdir(parents=True)
            for index in range(count):
                person += 1
                image = fixture_image(rng, size, label == "PNEUMONIA")
                name = (
                    f"person{person}_bacteria_{index + 1}.jpeg"
                    if label == "PNEUMONIA"
                    else f"IM-{person:04d}-0001.jpeg"
                )
                Image.fromarray(image, mode="L").save(folder / name, quality=90)
    return install_fixture(staging, final, XRAY_FIXTURE_VERSION)


def xray_transform(size: int = 224):
    """Grayscale film to the network's input: 3 equal channels, ``size x size``, ImageNet
    normalisation (what the EfficientNet-B0 weights expect)."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Grayscale(num_output_channels=3),
            transforms.Resize((size, size), antialias=True),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised images back to [0, 1] (for display)."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(-1, 1, 1)
    return (images * std + mean).clamp(0, 1)


def load_xray(split: str = "train", size: int = 224, root: str | Path | None = None):
    """The chest X-ray ``split`` ("train", "val" or "test") through torchvision's
    ``ImageFolder``: items ``(image (3, size, size) normalised, label)``, 0 NORMAL and 1
    PNEUMONIA.

    With Kaggle's data unpacked as ``root/chest_xray`` (default ``data_root()``) it reads
    that; otherwise it writes the synthetic fixture in the same layout and says so.
    """
    from torchvision.datasets import ImageFolder

    root = Path(root or data_root())
    real = root / "chest_xray"
    if (real / split / "NORMAL").is_dir() and not (real / "FIXTURE").exists():
        return ImageFolder(str(real / split), transform=xray_transform(size))
    fixture_root = root / "fixtures" / "xray"
    marker = fixture_root / "chest_xray" / "FIXTURE"
    if not marker.exists() or marker.read_text().strip() != XRAY_FIXTURE_VERSION:
        write_xray_fixture(fixture_root)
    dataset = ImageFolder(str(fixture_root / "chest_xray" / split), transform=xray_transform(size))
    print(
        f"Chest X-rays: {real} not found; using the synthetic films ({len(dataset)} {split} "
        "images). Place Kaggle's chest_xray folder there for the real data set."
    )
    return dataset


def save_weights_file(model: torch.nn.Module, path: str | Path, half: bool = False) -> Path:
    """Save ``model``'s state dict at ``path`` (e.g. ``cnnkit.weights_cache_path(weights)``),
    which is what a download leaves in the torch hub cache. ``half=True`` stores floating
    tensors as float16 (half the file; ``load_state_dict`` casts them back)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, path)
    return path


def show_saliency(images: torch.Tensor, cams: torch.Tensor, titles: list[str], scale=2.2):
    """Two rows: the films (ImageNet-normalised ``(N, 3, H, W)``), and the same films with
    the maps ``(N, H, W)`` overlaid, each map scaled to its own maximum."""
    import matplotlib.pyplot as plt

    count = len(images)
    fig, axes = plt.subplots(2, count, figsize=(scale * count, 2 * scale), squeeze=False)
    films = denormalize(images.detach().cpu())[:, 0]
    for k in range(count):
        cam = cams[k].detach().cpu().double()
        cam = cam / cam.max() if cam.max() > 0 else cam
        axes[0, k].imshow(films[k].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0, k].set_title(titles[k], fontsize=8)
        axes[1, k].imshow(films[k].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[1, k].imshow(cam.numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        for ax in axes[:, k]:
            ax.axis("off")
    fig.tight_layout()
    return fig
