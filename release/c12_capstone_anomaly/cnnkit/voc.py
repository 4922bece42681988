"""PASCAL VOC segmentation (6-05, 6-07): loaders, an offline fixture in the real layout, plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .env import data_root, download_allowed, install_fixture

# --------------------------------------------------------------------------- VOC segmentation (m06_05, m06_07)

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
# "void": object outlines and ambiguous pixels, left out of losses and metrics
VOC_IGNORE_INDEX = 255
VOC_FIXTURE_VERSION = "voc-fixture-1"
# The fixture's objects: VOC class id -> (shape, RGB colour in [0, 1]).
VOC_FIXTURE_OBJECTS = {
    1: ("triangle", (0.85, 0.25, 0.2)),  # aeroplane
    7: ("rectangle", (0.2, 0.4, 0.9)),  # car
    12: ("disk", (0.95, 0.8, 0.15)),  # dog
    15: ("ellipse", (0.7, 0.25, 0.8)),  # person
}


def voc_palette() -> np.ndarray:
    """The PASCAL VOC colour map: ``(256, 3)`` uint8, class c -> colour, 255 -> cream outline."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        c, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette[index] = (r, g, b)
    return palette


def colorize_mask(mask: torch.Tensor) -> np.ndarray:
    """A label map ``(H, W)`` (0-20, 255 void) as an RGB image ``(H, W, 3)`` uint8 in VOC colours."""
    return voc_palette()[np.asarray(mask.detach().cpu(), dtype=np.int64).clip(0, 255)]


def _shape_mask(shape: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean ``(H, W)`` mask of one randomly placed and sized shape."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    size = rng.uniform(0.2, 0.42) * min(height, width)
    cy, cx = (
        rng.uniform(size * 0.6, height - size * 0.6),
        rng.uniform(size * 0.6, width - size * 0.6),
    )
    if shape == "disk":
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= size**2 * 0.6
    if shape == "ellipse":
        return ((yy - cy) / (1.2 * size)) ** 2 + ((xx - cx) / (0.55 * size)) ** 2 <= 1
    if shape == "rectangle":
        half_h, half_w = size * rng.uniform(0.45, 0.7), size * rng.uniform(0.8, 1.1)
        return (np.abs(yy - cy) <= half_h) & (np.abs(xx - cx) <= half_w)
    # triangle: apex up, base down; inside when below both slanted edges and above the base
    top, base = cy - size, cy + 0.7 * size
    return (yy <= base) & (np.abs(xx - cx) <= (yy - top) * 0.75)


def _morph(mask: np.ndarray, radius: int, grow: bool) -> np.ndarray:
    """Binary dilation (``grow``) or erosion of ``mask`` with a square of side ``2 radius + 1``."""
    padded = np.pad(mask, radius, constant_values=not grow)
    height, width = mask.shape
    windows = [
        padded[dy : dy + height, dx : dx + width]
        for dy in range(2 * radius + 1)
        for dx in range(2 * radius + 1)
    ]
    return np.any(windows, axis=0) if grow else np.all(windows, axis=0)


def _voc_fixture_sample(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image ``(H, W, 3)`` uint8, its class map and its instance map ``(H, W)`` uint8."""
    height, width = int(rng.integers(64, 97)), int(rng.integers(64, 113))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle, frequency = rng.uniform(0, np.pi), rng.uniform(0.15, 0.5)
    stripes = np.sin(frequency * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 6.3))
    tint = rng.uniform(0.35, 0.6) + rng.uniform(-0.06, 0.06, 3)
    image = tint[:, None, None] + 0.12 * stripes[None] + rng.normal(0, 0.05, (3, height, width))
    classes = np.zeros((height, width), np.uint8)
    instances = np.zeros((height, width), np.uint8)
    for instance in range(1, int(rng.integers(1, 4)) + 1):
        label = int(rng.choice(list(VOC_FIXTURE_OBJECTS)))
        shape, colour = VOC_FIXTURE_OBJECTS[label]
        mask = _shape_mask(shape, height, width, rng)
        shade = 1 + 0.15 * np.sin(0.4 * yy + rng.uniform(0, 6.3))  # texture inside the object
        colour = np.clip(np.asarray(colour) + rng.uniform(-0.08, 0.08, 3), 0, 1)
        image[:, mask] = (colour[:, None] * shade[mask][None]).astype(np.float32)
        classes[mask], instances[mask] = label, instance
    for instance in np.unique(instances[instances > 0]):  # void outline, as drawn in real VOC
        visible = instances == instance
        outline = _morph(visible, 1, grow=True) & ~_morph(visible, 1, grow=False)
        classes[outline], instances[outline] = VOC_IGNORE_INDEX, VOC_IGNORE_INDEX
    image = np.clip(image + rng.normal(0, 0.03, image.shape), 0, 1)
    return (image.transpose(1, 2, 0) * 255).astype(np.uint8), classes, instances


def write_voc_fixture(
    root: str | Path, train_size: int = 64, val_size: int = 24, seed: int = 0
) -> Path:
    """Write a tiny PASCAL VOC 2012 in the real ``VOCdevkit/VOC2012`` layout; returns its folder.

    ``JPEGImages/<id>.jpg``; palette PNGs ``SegmentationClass/<id>.png`` (class 0-20,
    255 on object outlines) and ``SegmentationObject/<id>.png`` (instance 1..M);
    ``ImageSets/Segmentation/{train,val,trainval}.txt``. Images show coloured
    shapes (aeroplane = triangle, car = rectangle, dog = disk, person = ellipse)
    on a striped background, at sizes that are not multiples of 16.
    """
    import tempfile

    from PIL import Image

    final = Path(root) / "VOCdevkit" / "VOC2012"
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=".voc-staging-"))
    folders = {
        name: staging / name for name in ("JPEGImages", "SegmentationClass", "SegmentationObject")
    }
    for folder in [*folders.values(), staging / "ImageSets" / "Segmentation"]:
        folder.mkdir(parents=True)
    palette = voc_palette().reshape(-1).tolist()
    rng = np.random.default_rng(seed)
    ids = [f"2012_{index:06d}" for index in range(train_size + val_size)]
    for image_id in ids:
        image, classes, instances = _voc_fixture_sample(rng)
        Image.fromarray(image).save(folders["JPEGImages"] / f"{image_id}.jpg", quality=92)
        for name, labels in (("SegmentationClass", classes), ("SegmentationObject", instances)):
            png = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
            png.putpalette(palette)
            png.save(folders[name] / f"{image_id}.png")
    splits = {"train": ids[:train_size], "val": ids[train_size:], "trainval": ids}
    for split, names in splits.items():
        (staging / "ImageSets" / "Segmentation" / f"{split}.txt").write_text(
            "\n".join(names) + "\n"
        )
    return install_fixture(staging, final, VOC_FIXTURE_VERSION)


class VOCPairTransform:
    """Image and mask together: resize (bilinear / nearest) to ``size``, then to tensors.

    Returns ``image: (3, H, W)`` float in [0, 1] and ``mask: (H, W)`` int64 with 255 kept.
    """

    def __init__(self, size: tuple[int, int] | None = None) -> None:
        self.size = size

    def __call__(self, image, mask) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        if self.size is not None:
            image = TF.resize(image, list(self.size), interpolation=InterpolationMode.BILINEAR)
            mask = TF.resize(mask, list(self.size), interpolation=InterpolationMode.NEAREST)
        return TF.to_tensor(image), torch.as_tensor(np.array(mask), dtype=torch.int64)


def load_voc_segmentation(
    image_set: str = "train", size: tuple[int, int] | None = None, root: str | Path | None = None
):
    """PASCAL VOC 2012 segmentation through torchvision's ``VOCSegmentation``.

    Items are ``(image (3, H, W) float, mask (H, W) int64)``, resized to ``size``
    when given (masks with nearest neighbours, so 255 stays 255). Uses the real
    data under ``root`` (default ``data_root()``) when it is there, downloads it
    (2 GB) when ``CNNKIT_DOWNLOAD=1``, and otherwise falls back, visibly, to a
    small synthetic fixture in the same on-disk format.
    """
    from torchvision.datasets import VOCSegmentation

    root = Path(root or data_root())
    transforms = VOCPairTransform(size)
    if (root / "VOCdevkit" / "VOC2012" / "SegmentationClass").is_dir():
        return VOCSegmentation(str(root), year="2012", image_set=image_set, transforms=transforms)
    if download_allowed():
        return VOCSegmentation(
            str(root), year="2012", image_set=image_set, download=True, transforms=transforms
        )
    fixture_root = root / "fixtures"
    marker = fixture_root / "VOCdevkit" / "VOC2012" / "FIXTURE"
    if not marker.exists() or marker.read_text().strip() != VOC_FIXTURE_VERSION:
        write_voc_fixture(fixture_root)
    dataset = VOCSegmentation(
        str(fixture_root), year="2012", image_set=image_set, transforms=transforms
    )
    print(
        f"VOC 2012: real data not found under {root}; using the synthetic fixture "
        f"({len(dataset)} {image_set} images). Set CNNKIT_DOWNLOAD=1 for the real data set."
    )
    return dataset


def voc_instances(dataset, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The instance masks of item ``index`` at the file's own size, from ``SegmentationObject``.

    Returns ``masks: (M, H, W)`` bool and ``labels: (M,)`` int64 (each instance's VOC class).
    """
    from PIL import Image

    target = Path(dataset.targets[index])
    objects = np.array(Image.open(target.parent.parent / "SegmentationObject" / target.name))
    classes = np.array(Image.open(target))
    ids = [i for i in np.unique(objects) if 0 < i < VOC_IGNORE_INDEX]
    masks = np.stack([objects == i for i in ids]) if ids else np.zeros((0, *objects.shape), bool)
    labels = [int(np.bincount(classes[objects == i]).argmax()) for i in ids]
    return torch.from_numpy(masks), torch.tensor(labels, dtype=torch.int64)


def show_segmentations(images: torch.Tensor, masks: dict, scale: float = 1.8):
    """One row per image: the image, then each ``(N, H, W)`` label map in ``masks`` in VOC colours."""
    import matplotlib.pyplot as plt

    count, columns = images.shape[0], 1 + len(masks)
    fig, axes = plt.subplots(
        count, columns, figsize=(scale * columns, scale * count), squeeze=False
    )
    for row in range(count):
        axes[row, 0].imshow(images[row].detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
        for column, maps in enumerate(masks.values(), start=1):
            axes[row, column].imshow(colorize_mask(maps[row]), interpolation="nearest")
    for column, title in enumerate(["image", *masks]):
        axes[0, column].set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig
