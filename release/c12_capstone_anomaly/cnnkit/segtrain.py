"""Segmentation training at full speed (6-05, 6-07): cached tensors, augmentation, pretrained encoders.

- :func:`cache_voc_tensors` decodes and resizes a VOC split **once** and keeps it as uint8
  tensors (in memory, and in a ``.pt`` file under the data root keyed by split, size and the
  files), so epochs never decode a JPEG again;
- :class:`DeviceLoader` serves batches of those tensors from the device, optionally through
  :func:`augment_pairs` (random horizontal flip and random scale-and-crop, the same for an
  image and its mask: the mask with nearest neighbours, 255 kept, padding void);
- :func:`imagenet_resnet` builds a torchvision ResNet with its ImageNet weights when they
  are in the torch hub cache (or ``CNNKIT_DOWNLOAD=1``), and otherwise says so and returns
  ``None``; :class:`ResNetFeatures` turns it into an encoder;
- :func:`train_epoch_amp` is ``cnnkit.train_epoch`` with mixed precision on a GPU.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import weakref
from pathlib import Path

import torch

from .env import download_allowed, weights_cache_path
from .style import ImageNetNormalize

__all__ = [
    "SEG_CACHE_VERSION",
    "DeviceLoader",
    "ResNetFeatures",
    "TensorPairs",
    "augment_pairs",
    "cache_voc_tensors",
    "imagenet_resnet",
    "mixed_precision",
    "train_epoch_amp",
]

SEG_CACHE_VERSION = "segcache-1"

# --------------------------------------------------------------------------- cached tensors


class TensorPairs(torch.utils.data.Dataset):
    """Resized images and masks held as tensors: ``images (N, 3, H, W)`` and ``masks (N, H, W)``,
    both uint8 (VOC's classes 0-20 and void 255 fit in a byte).

    Items are what the VOC loader gives: ``(image (3, H, W) float in [0, 1], mask (H, W) int64)``,
    so a plain ``DataLoader`` and ``cnnkit.predict_batches`` work unchanged. ``indices`` are the
    items' positions in ``source``, the data set they were read from (as ``Subset.indices``).
    """

    def __init__(
        self, images: torch.Tensor, masks: torch.Tensor, indices=None, source=None
    ) -> None:
        if images.dtype != torch.uint8 or masks.dtype != torch.uint8:
            raise TypeError("images and masks are stored as uint8")
        if images.ndim != 4 or masks.shape != (images.shape[0], *images.shape[2:]):
            raise ValueError(f"shapes {tuple(images.shape)} and {tuple(masks.shape)} do not pair")
        self.images, self.masks, self.source = images, masks, source
        self.indices = list(range(len(images))) if indices is None else list(indices)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index].float() / 255, self.masks[index].long()


def _base_and_indices(dataset) -> tuple[object, list[int]]:
    """The data set under any ``Subset`` wrappers, and the positions of ``dataset``'s items in it."""
    indices = list(range(len(dataset)))
    while isinstance(dataset, torch.utils.data.Subset):
        indices = [int(dataset.indices[i]) for i in indices]
        dataset = dataset.dataset
    return dataset, indices


def _cache_key(base, indices: list[int], size: tuple[int, int]) -> str:
    """A digest of what the cache holds: the version, the size, the files and their stat."""
    files = []
    for index in indices:
        for name in (base.images[index], base.targets[index]):
            stat = os.stat(name)
            files.append([Path(name).name, stat.st_size, stat.st_mtime_ns])
    text = json.dumps([SEG_CACHE_VERSION, list(size), files])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_voc_tensors(
    dataset, workers: int = 0, cache_dir: str | Path | None = None, verbose: bool = True
) -> TensorPairs:
    """``dataset`` (from ``load_voc_segmentation(..., size=(H, W))``, or a ``Subset`` of it) as
    :class:`TensorPairs`, decoded and resized once.

    The tensors are saved to ``cache_dir`` (default: ``cache/`` beside the data set's
    ``VOCdevkit``) as ``voc2012-<split>-<H>x<W>-<count>-<digest>.pt``; the digest covers the
    size and the names, sizes and modification times of the image and mask files, so a changed
    data set is decoded again. The next call (the next epoch, another notebook) only loads the
    file. When the file cannot be written the tensors stay in memory and this is printed.
    ``workers`` decode in parallel the first time (a ``DataLoader``'s ``num_workers``).
    """
    base, indices = _base_and_indices(dataset)
    size = getattr(getattr(base, "transforms", None), "size", None)
    if size is None or not hasattr(base, "images"):
        raise ValueError("pass a VOC data set resized to one size: load_voc_segmentation(size=...)")
    height, width = size
    split = getattr(base, "image_set", "voc")
    folder = Path(cache_dir) if cache_dir is not None else Path(base.root) / "cache"
    name = f"voc2012-{split}-{height}x{width}-{len(indices)}-{_cache_key(base, indices, size)}.pt"
    path = folder / name
    if path.exists():
        try:
            saved = torch.load(path, weights_only=True)
            pairs = TensorPairs(saved["images"], saved["masks"], indices, base)
            if saved["indices"] == indices and tuple(pairs.images.shape[2:]) == (height, width):
                if verbose:
                    print(f"VOC {split}: {len(pairs)} images at {height}x{width} from {path}")
                return pairs
        except Exception as error:  # a damaged or foreign file: decode again below
            print(f"VOC cache {path} unreadable ({type(error).__name__}); decoding again")
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(base, indices), batch_size=32, num_workers=workers
    )
    images, masks = [], []
    for image, mask in loader:
        if mask.min() < 0 or mask.max() > 255:
            raise ValueError("mask values outside 0..255 do not fit the uint8 cache")
        images.append((image * 255).round().to(torch.uint8))  # exact: to_tensor divided by 255
        masks.append(mask.to(torch.uint8))
    pairs = TensorPairs(torch.cat(images), torch.cat(masks), indices, base)
    megabytes = (pairs.images.numel() + pairs.masks.numel()) / 2**20
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({"images": pairs.images, "masks": pairs.masks, "indices": indices}, partial)
        os.replace(partial, path)
        where = f"saved to {path}"
    except OSError as error:
        where = f"kept in memory only (could not write {folder}: {type(error).__name__})"
    if verbose:
        print(
            f"VOC {split}: decoded {len(pairs)} images at {height}x{width} once, "
            f"{megabytes:.0f} MB as uint8, {where}"
        )
    return pairs


# --------------------------------------------------------------------------- augmentation and batches


def augment_pairs(
    images: torch.Tensor,
    masks: torch.Tensor,
    flip: float = 0.5,
    scale: tuple[float, float] = (0.75, 1.5),
    ignore_index: int = 255,
    generator: torch.Generator | None = None,
    image_mode: str = "bilinear",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random horizontal flip and random scale-and-crop, the same for each image and its mask.

    ``images (N, 3, H, W)`` float, ``masks (N, H, W)`` int64, on any device; returns new tensors
    of the same shapes there. Per sample: a mirror image with probability ``flip``, then a zoom
    by a factor drawn uniformly from ``scale`` about a random point, cropped (zoom in) or padded
    (zoom out) back to ``H x W``. Images are resampled with ``image_mode`` (bilinear) and zero
    padding, masks with nearest neighbours (labels are never blended, 255 stays 255) and
    ``ignore_index`` where they are padded, so the loss skips the padding. The random numbers
    come from ``generator`` (CPU), or torch's global generator.
    """
    import torch.nn.functional as F

    count, _, height, width = images.shape
    draws = torch.rand(count, 4, generator=generator)  # CPU: reproducible on every device
    zoom = scale[0] + (scale[1] - scale[0]) * draws[:, 0]
    mirror = torch.where(draws[:, 1] < flip, -1.0, 1.0)
    reach = (1 - 1 / zoom).abs()  # how far the window may move, in [-1, 1] coordinates
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = mirror / zoom, 1 / zoom
    theta[:, 0, 2], theta[:, 1, 2] = (2 * draws[:, 2:] - 1).mul(reach[:, None]).unbind(1)
    theta = theta.to(images.device)
    grid = F.affine_grid(theta, [count, 1, height, width], align_corners=False)
    out_images = F.grid_sample(
        images, grid.to(images.dtype), mode=image_mode, padding_mode="zeros", align_corners=False
    )
    inside = torch.ones_like(masks, dtype=torch.float32)
    labels = torch.stack([masks.float(), inside], dim=1)  # (N, 2, H, W): exact small integers
    sampled = F.grid_sample(labels, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    out_masks = torch.where(
        sampled[:, 1] > 0.5, sampled[:, 0].round().long(), torch.full_like(masks, ignore_index)
    )
    return out_images, out_masks


class DeviceLoader:
    """Batches of :class:`TensorPairs` assembled on ``device``: no workers, no decoding.

    The uint8 tensors move to the device once; each batch is indexed, converted to
    ``(images (B, 3, H, W) float in [0, 1], masks (B, H, W) int64)`` and, when ``augment`` is
    given (e.g. :func:`augment_pairs`), augmented there. ``shuffle`` draws a new order every
    epoch from a generator seeded with ``seed``.
    """

    def __init__(
        self,
        pairs: TensorPairs,
        batch_size: int,
        device: torch.device | str,
        shuffle: bool = False,
        drop_last: bool = False,
        augment=None,
        seed: int = 0,
    ) -> None:
        self.dataset, self.batch_size, self.device = pairs, batch_size, torch.device(device)
        self.shuffle, self.drop_last, self.augment = shuffle, drop_last, augment
        self.images = pairs.images.to(self.device)
        self.masks = pairs.masks.to(self.device)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        count = len(self.dataset)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def __iter__(self):
        count = len(self.dataset)
        if self.shuffle:
            order = torch.randperm(count, generator=self.generator)
        else:
            order = torch.arange(count)
        for batch in range(len(self)):
            start = batch * self.batch_size
            index = order[start : start + self.batch_size].to(self.device)
            images = self.images[index].float().div_(255)
            masks = self.masks[index].long()
            if self.augment is not None:
                images, masks = self.augment(images, masks)
            yield images, masks


# --------------------------------------------------------------------------- pretrained encoders


def imagenet_resnet(
    arch: str = "resnet18", replace_stride_with_dilation=None, verbose: bool = True
):
    """torchvision's ``arch`` ("resnet18", "resnet34", "resnet50", ...) with ImageNet weights, or None.

    Uses a weights file of the architecture's enum that is already in the torch hub cache
    (:func:`weights_cache_path`; the enum's default first), or downloads the default one when
    ``CNNKIT_DOWNLOAD=1``. Without either, or when loading fails (offline, a damaged file),
    it prints why and returns ``None``: the caller falls back to a model trained from scratch.
    ``replace_stride_with_dilation`` (three bools, Bottleneck ResNets only) dilates stages
    instead of striding them, as DeepLab does.
    """
    from torchvision import models

    builder, family = models.get_model_builder(arch), models.get_model_weights(arch)
    candidates = [family.DEFAULT, *(w for w in family if w != family.DEFAULT)]
    cached = [w for w in candidates if weights_cache_path(w).exists()]
    chosen = cached[0] if cached else family.DEFAULT if download_allowed() else None
    label = f"{arch}: ImageNet weights"
    if chosen is None:
        names = ", ".join(weights_cache_path(w).name for w in candidates)
        if verbose:
            print(
                f"{label} not in {weights_cache_path(family.DEFAULT).parent} ({names}); "
                "set CNNKIT_DOWNLOAD=1 to download them."
            )
        return None
    options = {}
    if replace_stride_with_dilation is not None:
        options["replace_stride_with_dilation"] = list(replace_stride_with_dilation)
    try:
        network = builder(weights=chosen, **options)
    except Exception as error:  # offline download, a damaged or foreign file
        if verbose:
            print(f"{label} could not be loaded ({type(error).__name__}: {error})")
        return None
    if verbose:
        source = "from the torch hub cache" if cached else "downloaded"
        print(f"{label} {chosen} {source}")
    return network


class ResNetFeatures(torch.nn.Module):
    """A torchvision ResNet without its classifier, as an encoder: images in [0, 1] are
    normalised with ImageNet's statistics first.

    ``forward(x (N, 3, H, W))`` returns the feature maps after the stem (stride 2), layer1 (4),
    layer2 (8), layer3 (16) and layer4 (32, or less where stages are dilated) as a list, or
    only layer4's when ``return_all`` is False. ``channels`` lists their channel counts:
    ``[64, 64, 128, 256, 512]`` for ResNet-18/34, ``[64, 256, 512, 1024, 2048]`` for ResNet-50.
    """

    def __init__(self, network: torch.nn.Module, return_all: bool = True) -> None:
        super().__init__()
        self.return_all = return_all
        self.normalize = ImageNetNormalize()
        self.stem = torch.nn.Sequential(network.conv1, network.bn1, network.relu)
        self.pool = network.maxpool
        self.layer1, self.layer2 = network.layer1, network.layer2
        self.layer3, self.layer4 = network.layer3, network.layer4
        self.channels = [network.bn1.num_features] + [
            [m for m in layer.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1].num_features
            for layer in (self.layer1, self.layer2, self.layer3, self.layer4)
        ]

    def forward(self, x: torch.Tensor):
        features = [self.stem(self.normalize(x))]
        x = self.pool(features[0])
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            features.append(x)
        return features if self.return_all else features[-1]


# --------------------------------------------------------------------------- mixed precision

_SCALERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # optimizer -> GradScaler


def _half_dtype() -> torch.dtype:
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def mixed_precision(device: torch.device | str):
    """``torch.autocast`` on a GPU (bfloat16 where supported, else float16); a no-op on the CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=_half_dtype())


def train_epoch_amp(
    model: torch.nn.Module, loader, loss_fn, optimizer, device: torch.device
) -> float:
    """``cnnkit.train_epoch`` with mixed precision on a GPU; the mean loss.

    On CUDA the forward pass runs under :func:`mixed_precision` (float16 GPUs also get loss
    scaling, one scaler per optimizer) and the loss is computed in float32 from float32
    logits; cuDNN picks its fastest kernels for the call. On the CPU it is plain float32,
    exactly ``cnnkit.train_epoch``. Batches may already be on ``device`` (a DeviceLoader).
    """
    device = torch.device(device)
    scaler = None
    if device.type == "cuda" and _half_dtype() == torch.float16:
        scaler = _SCALERS.setdefault(optimizer, torch.amp.GradScaler("cuda"))
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = device.type == "cuda" or benchmark
    model.train()
    total, batches = torch.zeros((), device=device), 0
    try:
        for images, masks in loader:
            images = images.to(device, non_blocking=True)
            masks = masks.to(device, non_blocking=True)
            with mixed_precision(device):
                logits = model(images)  # (N, K, H, W)
            loss = loss_fn(logits.float(), masks)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            total, batches = total + loss.detach(), batches + 1  # no sync per step
    finally:
        torch.backends.cudnn.benchmark = benchmark
    return total.item() / max(batches, 1)
