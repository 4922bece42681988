"""Visual inspection (the checkpoint project): an MVTec AD loader, an offline fixture of
textures with synthetic defects, and the plots a factory worker reads.

Import it as ``from cnnkit import mvtec``. The layout is MVTec AD's, one folder per
category::

    <category>/train/good/000.png ...                 normal images only
    <category>/test/good/000.png ...                  normal test images
    <category>/test/<defect>/000.png ...              defective test images
    <category>/ground_truth/<defect>/000_mask.png ... their masks (0 or 255)

MVTec AD's licence (CC BY-NC-SA 4.0) forbids redistribution, so it is never downloaded:
place a category by hand under ``CNNKIT_DATA/mvtec_ad/<category>`` (for example
``data/mvtec_ad/carpet``) and the loader uses it. Otherwise a synthetic category
``woven`` (procedural textures with scratches and spots) is written in the same layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .env import data_root, install_fixture

MVTEC_FIXTURE_VERSION = "woven-fixture-1"
FIXTURE_CATEGORY = "woven"
FIXTURE_DEFECTS = ("scratch", "spot")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


# --------------------------------------------------------------------------- the fixture


def _texture(rng: np.random.Generator, size: int, base: dict) -> np.ndarray:
    """A woven texture ``(size, size, 3)`` in [0, 1]: the category's fixed threads and colour,
    shifted and slightly varied per image (what normal variation looks like)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    shift = rng.uniform(0, 40, 2)
    xx, yy = xx + shift[0], yy + shift[1]
    warp = np.sin(2 * np.pi * xx / base["period"]) * np.sin(2 * np.pi * yy / base["period"])
    weft = np.sin(2 * np.pi * (xx + 0.3 * yy) / (base["period"] * 0.5))
    value = 0.5 + 0.22 * warp + 0.08 * weft + rng.normal(0, 0.035, (size, size))
    colour = base["colour"] + rng.normal(0, 0.02, 3)
    return np.clip(value[..., None] * colour * rng.uniform(0.95, 1.05), 0, 1)


def _scratch(rng: np.random.Generator, size: int) -> tuple[np.ndarray, float]:
    """A thin line: its mask (size, size) bool and the brightness change."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    length, angle = rng.uniform(0.2, 0.45) * size, rng.uniform(0, np.pi)
    cx, cy = rng.uniform(0.25, 0.75, 2) * size
    dx, dy = np.cos(angle), np.sin(angle)
    along = (xx - cx) * dx + (yy - cy) * dy
    across = -(xx - cx) * dy + (yy - cy) * dx
    mask = (np.abs(along) <= length / 2) & (np.abs(across) <= rng.uniform(0.8, 1.8))
    return mask, rng.choice([-0.45, 0.4])


def _spot(rng: np.random.Generator, size: int) -> tuple[np.ndarray, float]:
    """A stain: an irregular ellipse, its mask and the brightness change."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = rng.uniform(0.2, 0.8, 2) * size
    rx, ry = rng.uniform(0.03, 0.07, 2) * size
    angle = np.arctan2(yy - cy, xx - cx)
    wobble = 1 + 0.2 * np.sin(3 * angle + rng.uniform(0, 6.3))
    mask = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= wobble**2
    return mask, rng.choice([-0.35, 0.3])


def fixture_sample(
    rng: np.random.Generator, size: int = 128, defect: str = "good"
) -> tuple[np.ndarray, np.ndarray]:
    """One ``(size, size, 3)`` uint8 image of the fixture's texture and its ``(size, size)``
    uint8 mask (255 on the defect): ``defect`` is "good", "scratch" or "spot"."""
    base = {"period": 16.0, "colour": np.array([0.75, 0.62, 0.45])}
    image = _texture(rng, size, base)
    mask = np.zeros((size, size), dtype=bool)
    if defect != "good":
        mask, change = (_scratch if defect == "scratch" else _spot)(rng, size)
        tint = np.array([1.0, 0.9, 0.8]) if change < 0 else np.array([1.0, 1.0, 1.0])
        image[mask] = np.clip(image[mask] + change * tint, 0, 1)
    return (image * 255).astype(np.uint8), mask.astype(np.uint8) * 255


def write_mvtec_fixture(
    root: str | Path,
    train_good: int = 200,
    test_good: int = 24,
    test_defects: int = 30,
    size: int = 128,
    seed: int = 0,
) -> Path:
    """Write the synthetic category ``woven`` in MVTec AD's layout under ``root``; returns
    ``root/woven``. ``train_good`` normal training images; ``test_good`` normal and
    ``test_defects`` images of each defect type (scratch, spot) for testing, so that, as
    in MVTec AD, defective test images outnumber normal ones; a PNG mask per defect image."""
    import tempfile

    from PIL import Image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".woven-staging-"))
    rng = np.random.default_rng(seed)
    plan = [("train", "good", train_good), ("test", "good", test_good)]
    plan += [("test", defect, test_defects) for defect in FIXTURE_DEFECTS]
    for split, defect, count in plan:
        folder = staging / split / defect
        folder.mkdir(parents=True)
        if defect != "good":
            (staging / "ground_truth" / defect).mkdir(parents=True)
        for index in range(count):
            image, mask = fixture_sample(rng, size, defect)
            Image.fromarray(image).save(folder / f"{index:03d}.png")
            if defect != "good":
                path = staging / "ground_truth" / defect / f"{index:03d}_mask.png"
                Image.fromarray(mask, mode="L").save(path)
    return install_fixture(staging, root / FIXTURE_CATEGORY, MVTEC_FIXTURE_VERSION)


# --------------------------------------------------------------------------- the data set


class MVTecAD(torch.utils.data.Dataset):
    """One MVTec AD category, ``split`` "train" (normal images only) or "test".

    An item is ``(image, mask, label, defect)``: ``image (3, size, size)`` float32 in
    [0, 1] (bilinear resize), ``mask (size, size)`` float32 0/1 (nearest resize; zeros for
    normal images), ``label`` 0 for good and 1 for defective, ``defect`` the folder name.
    """

    def __init__(self, category_dir: str | Path, split: str = "train", size: int = 128) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        self.root, self.split, self.size = Path(category_dir), split, size
        folder = self.root / split
        if not folder.is_dir():
            raise FileNotFoundError(f"no {split}/ folder in {self.root}")
        self.items: list[tuple[Path, Path | None, str]] = []
        for defect_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            defect = defect_dir.name
            for path in sorted(defect_dir.iterdir()):
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                mask = None
                if defect != "good":
                    mask = self.root / "ground_truth" / defect / f"{path.stem}_mask.png"
                    if not mask.exists():
                        raise FileNotFoundError(f"no mask {mask} for {path}")
                self.items.append((path, mask, defect))
        if not self.items:
            raise FileNotFoundError(f"no images under {folder}")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> torch.Tensor:
        """0 for good, 1 for defective, in item order (int64)."""
        return torch.tensor([int(defect != "good") for _, _, defect in self.items])

    def __getitem__(self, index: int):
        from PIL import Image

        path, mask_path, defect = self.items[index]
        size = (self.size, self.size)
        image = Image.open(path).convert("RGB").resize(size, Image.BILINEAR)
        image = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
        if mask_path is None:
            mask = torch.zeros(size, dtype=torch.float32)
        else:
            mask = Image.open(mask_path).convert("L").resize(size, Image.NEAREST)
            mask = torch.from_numpy((np.asarray(mask) > 127).astype(np.float32))
        return image.contiguous(), mask, int(defect != "good"), defect


def category_dir(category: str | None = None, verbose: bool = True) -> Path:
    """The real ``CNNKIT_DATA/mvtec_ad/<category>`` when present, else the fixture (written
    once under ``CNNKIT_DATA/mvtec_fixture``)."""
    real_root = data_root() / "mvtec_ad"
    if category is not None and (real_root / category / "train").is_dir():
        if verbose:
            print(f"MVTec AD: using the real category {category!r} in {real_root / category}")
        return real_root / category
    fixture_root = data_root() / "mvtec_fixture"
    final = fixture_root / FIXTURE_CATEGORY
    stamp = final / "FIXTURE"
    if not (stamp.exists() and stamp.read_text().strip() == MVTEC_FIXTURE_VERSION):
        write_mvtec_fixture(fixture_root)
    if verbose:
        wanted = f" (no {real_root / category})" if category else ""
        print(f"MVTec AD not found{wanted}: using the synthetic category 'woven' in {final}")
    return final


def as_tensors(dataset: MVTecAD, count: int | None = None):
    """The first ``count`` items (all by default), spread over the defect types in order:
    images (N, 3, S, S), masks (N, S, S), labels (N,) int64, defect names."""
    indices = list(range(len(dataset)))
    if count is not None and count < len(indices):
        indices = [round(k * (len(indices) - 1) / max(count - 1, 1)) for k in range(count)]
    items = [dataset[i] for i in indices]
    return (
        torch.stack([item[0] for item in items]),
        torch.stack([item[1] for item in items]),
        torch.tensor([item[2] for item in items]),
        [item[3] for item in items],
    )


# --------------------------------------------------------------------------- what a worker sees


def defect_probability(scores, threshold: float, scale: float) -> torch.Tensor:
    """A calibrated-looking probability: 0.5 at the decision threshold, rising over ``scale``
    (the spread of normal scores): ``sigmoid((score - threshold) / scale)``."""
    return torch.sigmoid((torch.as_tensor(scores, dtype=torch.float64) - threshold) / scale)


def verdict(probability: float) -> str:
    """A plain-language verdict for the line."""
    if probability >= 0.5:
        return f"DEFECT - remove the part ({probability:.0%} sure)"
    return f"OK - part passes ({1 - probability:.0%} sure)"


def show_heatmaps(images, maps, probabilities, vmax: float, masks=None, titles=None):
    """Each image with its anomaly map overlaid (a colour bar from "normal" to "defect"),
    the verdict as its title and, when given, the true defect outlined in white."""
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n + 0.8, 3.2), squeeze=False)
    shown = None
    for k, ax in enumerate(axes[0]):
        ax.imshow(images[k].permute(1, 2, 0).cpu().clamp(0, 1).numpy())
        shown = ax.imshow(maps[k].cpu().numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=vmax)
        if masks is not None and masks[k].any():
            ax.contour(masks[k].cpu().float().numpy(), levels=[0.5], colors="white", linewidths=1)
        probability = float(probabilities[k])
        colour = "red" if probability >= 0.5 else "green"
        label = verdict(probability).split(" (")[0]
        title = f"{titles[k]}\n" if titles is not None else ""
        ax.set_title(f"{title}{label}\np(defect) = {probability:.2f}", fontsize=8, color=colour)
        ax.axis("off")
    bar = fig.colorbar(shown, ax=list(axes[0]), fraction=0.02, pad=0.02)
    bar.set_ticks([0, vmax])
    bar.set_ticklabels(["normal", "defect"])
    return fig


# --------------------------------------------------------------------------- the deployed model


class PatchBackbone(torch.nn.Module):
    """ResNet-18 up to ``layer3``: an image ``(N, 3, S, S)`` in [0, 1] is ImageNet-normalised
    and mapped to its ``layer2`` (stride 8) and ``layer3`` (stride 16) feature maps."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
        self.layer2, self.layer3 = net.layer2, net.layer3
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        l2 = self.layer2(self.stem((x - self.mean) / self.std))
        return l2, self.layer3(l2)


def patch_backbone(weights=None, seed: int = 0) -> PatchBackbone:
    """The capstone's backbone in eval mode: torchvision's ResNet-18 with ``weights`` (a
    ``ResNet18_Weights`` enum), or seeded random weights when ``weights`` is None."""
    import torchvision

    if weights is None:
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            net = torchvision.models.resnet18()
        finally:
            torch.random.set_rng_state(state)
    else:
        net = torchvision.models.resnet18(weights=weights)
    return PatchBackbone(net).eval()


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` layers run in INT8 (torchao's dynamic INT8
    activations and INT8 weights; convolutions stay float32), in eval mode. Without torchao,
    or where it cannot quantise, the float32 copy, with a warning."""
    import copy
    import logging
    import warnings

    model = copy.deepcopy(model).eval()
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)  # torchao's import notice
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        quantize_(model, Int8DynamicActivationInt8WeightConfig())
    except Exception as error:  # torchao missing, or no INT8 kernels on this machine
        warnings.warn(f"INT8 quantisation skipped ({type(error).__name__}: {error})", stacklevel=2)
    return model
