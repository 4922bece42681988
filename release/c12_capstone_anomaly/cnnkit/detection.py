"""Object detection (Lab 4, mini-YOLO): a VOC-format loader, an offline fixture of faces, plots.

Import it as ``from cnnkit import detection``. Boxes are ``(x1, y1, x2, y2)`` floats:
pixels in the files' convention, fractions of the image (``[0, 1]``) once loaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .env import data_root, download_allowed, install_fixture

DETECTION_FIXTURE_VERSION = "faces-fixture-1"
FACE_CLASS = "face"  # the fixture's one class
REAL_CLASS = "person"  # the one class taken from the real PASCAL VOC 2012


def _draw_face(image: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator):
    """Paint a cartoon face (skin ellipse, two eyes, a mouth) filling ``box`` in place."""
    x1, y1, x2, y2 = box
    yy, xx = np.mgrid[y1:y2, x1:x2].astype(np.float32) + 0.5
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    u, v = (xx - cx) / rx, (yy - cy) / ry  # -1..1 inside the box
    skin = np.array([0.93, 0.75, 0.6]) * rng.uniform(0.55, 1.05) + rng.uniform(-0.05, 0.05, 3)
    region = image[y1:y2, x1:x2]
    inside = u**2 + v**2 <= 1
    region[inside] = np.clip(skin, 0, 1) * (1 - 0.15 * v[inside, None] ** 2)
    for side in (-0.38, 0.38):  # eyes
        region[((u - side) / 0.16) ** 2 + ((v + 0.22) / 0.13) ** 2 <= 1] = (0.08, 0.08, 0.12)
    mouth = (np.abs(v - 0.42) <= 0.07 + 0.06 * (1 - np.abs(u) / 0.45)) & (np.abs(u) <= 0.45)
    region[mouth & inside] = (0.65, 0.12, 0.15)


def _fixture_sample(
    rng: np.random.Generator, size: int
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """One ``(size, size, 3)`` uint8 image and its face boxes ``(x1, y1, x2, y2)`` in pixels
    (x2, y2 exclusive). 2 to 6 faces; in about half the images two small faces share one
    cell of a 7 x 7 grid."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle, frequency = rng.uniform(0, np.pi), rng.uniform(0.08, 0.3)
    stripes = np.sin(frequency * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 6.3))
    tint = rng.uniform(0.2, 0.6, 3)
    image = tint + 0.1 * stripes[..., None] + rng.normal(0, 0.04, (size, size, 3))
    boxes = []
    cell = size / 7
    if rng.random() < 0.5:  # two small faces whose centres fall in the same grid cell
        row, col = rng.integers(1, 6, size=2)
        side = int(rng.integers(max(6, size // 12), max(8, size // 7)))
        for dx in (-0.28, 0.28):
            cx, cy = (col + 0.5 + dx) * cell, (row + 0.5 + rng.uniform(-0.2, 0.2)) * cell
            x1, y1 = int(round(cx - side / 2)), int(round(cy - side / 2))
            boxes.append((x1, y1, x1 + side, y1 + side))
    for _ in range(int(rng.integers(2, 7)) - len(boxes)):
        w = int(rng.integers(size // 8, size // 3))
        h = int(w * rng.uniform(1.0, 1.3))
        x1, y1 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        boxes.append((x1, y1, x1 + w, y1 + h))
    for box in sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1])):  # small ones on top
        _draw_face(image, box, rng)
    image = np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1)
    return (image * 255).astype(np.uint8), boxes


def _annotation_xml(image_id: str, size: int, boxes, name: str) -> str:
    """A PASCAL VOC annotation: 1-based, inclusive pixel coordinates (xmin = x1 + 1, xmax = x2)."""
    objects = "".join(
        f"\t<object>\n\t\t<name>{name}</name>\n\t\t<pose>Unspecified</pose>\n"
        "\t\t<truncated>0</truncated>\n\t\t<difficult>0</difficult>\n"
        f"\t\t<bndbox>\n\t\t\t<xmin>{x1 + 1}</xmin>\n\t\t\t<ymin>{y1 + 1}</ymin>\n"
        f"\t\t\t<xmax>{x2}</xmax>\n\t\t\t<ymax>{y2}</ymax>\n\t\t</bndbox>\n\t</object>\n"
        for x1, y1, x2, y2 in boxes
    )
    return (
        f"<annotation>\n\t<folder>VOC2012</folder>\n\t<filename>{image_id}.jpg</filename>\n"
        f"\t<size>\n\t\t<width>{size}</width>\n\t\t<height>{size}</height>\n"
        f"\t\t<depth>3</depth>\n\t</size>\n\t<segmented>0</segmented>\n{objects}</annotation>\n"
    )


def write_detection_fixture(
    root: str | Path, train_size: int = 400, val_size: int = 100, size: int = 112, seed: int = 0
) -> Path:
    """Write a small face-detection set in PASCAL VOC 2012's layout; returns its folder.

    ``VOCdevkit/VOC2012/JPEGImages/<id>.jpg``, ``Annotations/<id>.xml`` (one class,
    ``face``, several per image, some pairs sharing a cell of a 7 x 7 grid) and
    ``ImageSets/Main/{train,val,trainval}.txt``: what ``torchvision.datasets.VOCDetection``
    reads.
    """
    import tempfile

    from PIL import Image

    final = Path(root) / "VOCdevkit" / "VOC2012"
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=".faces-staging-"))
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (staging / folder).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    ids = [f"2012_{index:06d}" for index in range(train_size + val_size)]
    for image_id in ids:
        image, boxes = _fixture_sample(rng, size)
        Image.fromarray(image).save(staging / "JPEGImages" / f"{image_id}.jpg", quality=92)
        xml = _annotation_xml(image_id, size, boxes, FACE_CLASS)
        (staging / "Annotations" / f"{image_id}.xml").write_text(xml)
    splits = {"train": ids[:train_size], "val": ids[train_size:], "trainval": ids}
    for split, names in splits.items():
        (staging / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return install_fixture(staging, final, DETECTION_FIXTURE_VERSION)


class DetectionTransform:
    """A VOC item to tensors: the image resized to ``size x size`` in ``[0, 1]``, and the
    boxes of class ``name`` (not marked difficult) as fractions of the image.

    Returns ``image: (3, size, size)`` float32 and ``boxes: (K, 4)`` float32 ``xyxy``.
    """

    def __init__(self, size: int, name: str) -> None:
        self.size, self.name = size, name

    def __call__(self, image, target) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision.transforms import functional as TF

        width, height = image.size
        boxes = [
            [
                (float(o["bndbox"]["xmin"]) - 1) / width,
                (float(o["bndbox"]["ymin"]) - 1) / height,
                float(o["bndbox"]["xmax"]) / width,
                float(o["bndbox"]["ymax"]) / height,
            ]
            for o in target["annotation"].get("object", [])
            if o["name"] == self.name and o.get("difficult", "0") != "1"
        ]
        image = TF.to_tensor(TF.resize(image, [self.size, self.size], antialias=True))
        return image, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def load_detection(image_set: str = "train", size: int = 112, root: str | Path | None = None):
    """One-class detection through torchvision's ``VOCDetection``.

    Items are ``(image (3, size, size) float, boxes (K, 4) float)``, boxes ``xyxy`` as
    fractions of the image. With PASCAL VOC 2012 under ``root`` (default ``data_root()``)
    the class is ``person``; ``CNNKIT_DOWNLOAD=1`` downloads it (2 GB). Otherwise a
    synthetic set of faces in the same on-disk format is written and used, visibly.
    """
    from torchvision.datasets import VOCDetection

    root = Path(root or data_root())
    if (root / "VOCdevkit" / "VOC2012" / "Annotations").is_dir() or download_allowed():
        transforms = DetectionTransform(size, REAL_CLASS)
        return VOCDetection(
            str(root),
            year="2012",
            image_set=image_set,
            download=download_allowed(),
            transforms=transforms,
        )
    fixture_root = root / "fixtures" / "faces"
    marker = fixture_root / "VOCdevkit" / "VOC2012" / "FIXTURE"
    if not marker.exists() or marker.read_text().strip() != DETECTION_FIXTURE_VERSION:
        write_detection_fixture(fixture_root)
    dataset = VOCDetection(
        str(fixture_root),
        year="2012",
        image_set=image_set,
        transforms=DetectionTransform(size, FACE_CLASS),
    )
    print(
        f"VOC 2012 detection: real data not found under {root}; using the synthetic faces "
        f"({len(dataset)} {image_set} images). Set CNNKIT_DOWNLOAD=1 for the real data set."
    )
    return dataset


def show_detections(images: torch.Tensor, panels: dict, scale: float = 2.2):
    """One row per image, one column per entry of ``panels``: ``{title: [(boxes, scores
    or None) per image]}``, boxes ``xyxy`` as fractions of the image. Ground truth (scores
    None) is drawn in green, detections in orange with their scores."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    count, columns = images.shape[0], len(panels)
    fig, axes = plt.subplots(
        count, columns, figsize=(scale * columns, scale * count), squeeze=False
    )
    size = images.shape[-1]
    for column, (title, per_image) in enumerate(panels.items()):
        for row in range(count):
            ax = axes[row, column]
            ax.imshow(images[row].detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
            boxes, scores = per_image[row]
            colour = "lime" if scores is None else "orange"
            for k, (x1, y1, x2, y2) in enumerate((boxes.detach().cpu() * size).tolist()):
                ax.add_patch(
                    Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=colour, lw=1.2)
                )
                if scores is not None:
                    ax.text(x1, y1, f"{float(scores[k]):.2f}", color=colour, fontsize=6)
            ax.axis("off")
        axes[0, column].set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
