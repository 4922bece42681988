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
    elif isinstance(expected, float) and not isinstance(expected, bool):
        ok = isinstance(actual, int | float) and abs(actual - expected) <= atol + rtol * abs(
            expected
        )
        assert ok, (
            f"{name}: got {actual!r}, expected {expected!r} (within {atol:.0e} + {rtol:.0e}*|expected|)"
        )
    else:
        assert actual == expected, f"{name}: got {actual!r}, expected {expected!r}"
    print(f"✓ {name}")


# --------------------------------------------------------------------------- style transfer and adversarial (m06_08, m06_10)

STYLE_KINDS = ("stripes", "checkers", "swirl")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def procedural_style(kind: str, size: int = 128, seed: int = 0) -> torch.Tensor:
    """A style image ``(3, size, size)`` in [0, 1] drawn by a formula: "stripes", "checkers" or "swirl".

    The seed picks the two colours, the angle and the scale, so every call is reproducible.
    """
    if kind not in STYLE_KINDS:
        raise ValueError(f"unknown style {kind!r}; choose one of {STYLE_KINDS}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5  # (size, size) in [-0.5, 0.5)
    angle = rng.uniform(0, np.pi)
    u = np.cos(angle) * xx + np.sin(angle) * yy
    v = -np.sin(angle) * xx + np.cos(angle) * yy
    if kind == "stripes":
        pattern = np.sin(2 * np.pi * rng.uniform(5, 9) * u + 1.5 * np.sin(2 * np.pi * 2 * v))
    elif kind == "checkers":
        cells = rng.uniform(5, 8)
        pattern = np.sign(np.sin(2 * np.pi * cells * u) * np.sin(2 * np.pi * cells * v))
    else:
        radius, theta = np.hypot(xx, yy), np.arctan2(yy, xx)
        pattern = np.sin(5 * theta + 2 * np.pi * rng.uniform(4, 7) * radius)
    mix = (pattern[None] + 1) / 2  # (1, size, size) in [0, 1]
    first = rng.uniform(0.0, 1.0, size=(3, 1, 1))
    second = np.clip(1 - first + rng.normal(0, 0.15, size=(3, 1, 1)), 0, 1)  # a contrasting colour
    image = first * mix + second * (1 - mix) + rng.normal(0, 0.03, (3, size, size))
    return torch.from_numpy(np.clip(image, 0, 1).astype(np.float32))


class ImageNetNormalize(torch.nn.Module):
    """``(x - mean) / std`` per channel with ImageNet's statistics; ``x: (N, 3, H, W)`` in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _vgg_layer_names(features: torch.nn.Sequential) -> list[str]:
    """conv1_1, relu1_1, conv1_2, ..., pool1, conv2_1, ... for the layers of ``vgg.features``."""
    names, block, index = [], 1, 1
    for layer in features:
        if isinstance(layer, torch.nn.Conv2d):
            names.append(f"conv{block}_{index}")
        elif isinstance(layer, torch.nn.ReLU):
            names.append(f"relu{block}_{index}")
            index += 1
        else:
            names.append(f"pool{block}")
            block, index = block + 1, 1
    return names


def vgg19_features(last_layer: str | None = None) -> tuple[torch.nn.Sequential, list[str]]:
    """VGG19's convolutional part behind an ImageNet normalisation, frozen, in eval mode.

    Returns ``(model, names)``: ``model[i]`` is the layer called ``names[i]`` (``names[0]`` is
    "normalize", then "conv1_1", "relu1_1", ...). ``last_layer`` drops everything after that
    layer. The ImageNet weights come from torchvision's ``VGG19_Weights`` enum when they are in
    the torch hub cache (or ``CNNKIT_DOWNLOAD=1``); otherwise the network is randomly
    initialised, and this is printed.
    """
    from torchvision.models import VGG19_Weights, vgg19

    weights = VGG19_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    network = None
    if cached.exists() or download_allowed():
        try:
            network = vgg19(weights=weights)
        except Exception as exc:  # offline or a damaged file: fall back below
            print(f"VGG19: could not load the ImageNet weights ({type(exc).__name__}).")
    if network is None:
        torch.manual_seed(0)
        network = vgg19(weights=None)
        print(
            "VGG19: ImageNet weights not found; using RANDOM weights (set CNNKIT_DOWNLOAD=1 for the real ones)."
        )
    names = ["normalize", *_vgg_layer_names(network.features)]
    model = torch.nn.Sequential(ImageNetNormalize(), *network.features)
    if last_layer is not None:
        keep = names.index(last_layer) + 1
        model, names = model[:keep], names[:keep]
    model.requires_grad_(False)
    return model.eval(), names


def show_adversarial(
    clean: torch.Tensor,
    adversarial: torch.Tensor,
    clean_titles=None,
    adversarial_titles=None,
    scale: float = 1.6,
):
    """Three rows for a batch ``(N, 3, H, W)``: clean images, perturbations (rescaled to the
    full colour range, grey = 0) and adversarial images."""
    import matplotlib.pyplot as plt

    clean, adversarial = clean.detach().cpu(), adversarial.detach().cpu()
    delta = adversarial - clean
    bound = float(delta.abs().max()) or 1.0
    rows = [
        (clean, clean_titles, "clean"),
        (0.5 + delta / (2 * bound), None, f"perturbation (x{0.5 / bound:.0f})"),
        (adversarial, adversarial_titles, "adversarial"),
    ]
    count = clean.shape[0]
    fig, axes = plt.subplots(3, count, figsize=(scale * count, scale * 3.2), squeeze=False)
    for row, (images, titles, label) in enumerate(rows):
        for col in range(count):
            ax = axes[row, col]
            ax.imshow(images[col].permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if titles is not None:
                ax.set_title(str(titles[col]), fontsize=8)
        axes[row, 0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    return fig


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
    import shutil
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
    (staging / "FIXTURE").write_text(VOC_FIXTURE_VERSION + "\n")
    if final.exists():  # an older fixture: replace it
        shutil.rmtree(final, ignore_errors=True)
    try:
        staging.rename(final)
    except OSError:  # another process wrote the same fixture first
        shutil.rmtree(staging, ignore_errors=True)
    return final


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


def train_epoch(model: torch.nn.Module, loader, loss_fn, optimizer, device: torch.device) -> float:
    """One pass over ``loader`` of ``(images (N, 3, H, W), masks (N, H, W))``; the mean loss."""
    model.train()
    total, batches = 0.0, 0
    for images, masks in loader:
        images, masks = images.to(device), masks.to(device)
        loss = loss_fn(model(images), masks)  # logits: (N, K, H, W)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total, batches = total + loss.item(), batches + 1
    return total / max(batches, 1)


def predict_batches(model: torch.nn.Module, loader, device: torch.device):
    """Yield ``(images (B, 3, H, W), targets (B, H, W), predictions (B, H, W))`` per batch, on the CPU.

    The model runs in eval mode without gradients; predictions are the argmax over classes.
    """
    model.eval()
    for images, targets in loader:
        with torch.no_grad():  # closed before each yield, so the caller keeps its grad mode
            predictions = model(images.to(device)).argmax(1).cpu()
        yield images, targets, predictions


def ordered_tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    """Parameters, then floating-point buffers (BatchNorm statistics), in registration order."""
    return [*module.parameters(), *(b for b in module.buffers() if b.is_floating_point())]


def load_ordered(module: torch.nn.Module, tensors: list[torch.Tensor]) -> torch.nn.Module:
    """Copy ``tensors`` into :func:`ordered_tensors` of ``module``, as the autograder does."""
    targets = ordered_tensors(module)
    if len(targets) != len(tensors):
        raise ValueError(
            f"the module has {len(targets)} parameter and buffer tensors, expected {len(tensors)}"
        )
    with torch.no_grad():
        for index, (target, value) in enumerate(zip(targets, tensors)):
            if target.shape != value.shape:
                raise ValueError(
                    f"tensor {index} has shape {tuple(target.shape)}, expected {tuple(value.shape)}"
                )
            target.copy_(value)
    return module


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and BatchNorm statistics (variances in [0.5, 1.5]), so every term counts."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                noise = 0.5 + torch.rand(tensor.shape, generator=generator, dtype=torch.float64)
            else:
                noise = 0.3 * torch.randn(tensor.shape, generator=generator, dtype=torch.float64)
            tensor.copy_(noise)
    return module


# --------------------------------------------------------------------------- grading helpers
# The hidden tests build trusted models with these, in the sandbox and in the grader alike.

LAYERS = {
    "conv2d": torch.nn.Conv2d,
    "linear": torch.nn.Linear,
    "relu": torch.nn.ReLU,
    "tanh": torch.nn.Tanh,
    "flatten": torch.nn.Flatten,
    "maxpool2d": torch.nn.MaxPool2d,
    "avgpool2d": torch.nn.AvgPool2d,
    "adaptiveavgpool2d": torch.nn.AdaptiveAvgPool2d,
    "batchnorm2d": torch.nn.BatchNorm2d,
    "dropout": torch.nn.Dropout,
}


def build_model(spec: dict) -> torch.nn.Sequential:
    """A small ``nn.Sequential`` from a spec: ``{"layers": [["conv2d", 3, 4, 3], ["relu"],
    ...], "state": {name: tensor}, "dtype": "float64", "train": False}``."""
    layers = [LAYERS[name](*args) for name, *args in spec["layers"]]
    model = torch.nn.Sequential(*layers).to(getattr(torch, spec.get("dtype", "float32")))
    if spec.get("state") is not None:
        model.load_state_dict(spec["state"])
    return model.train(bool(spec.get("train", False)))


def model_report(model: torch.nn.Module) -> dict:
    """What a call did to a model: its mode, which parameters hold a non-zero gradient,
    and its weights and statistics (a state dict)."""
    return {
        "training": model.training,
        "grads": [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters()],
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }
