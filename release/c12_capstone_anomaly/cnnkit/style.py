"""Style transfer and adversarial examples (6-08, 6-10): procedural styles, VGG-19 features, plots."""

from __future__ import annotations

import numpy as np
import torch

from .env import download_allowed, weights_cache_path

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
    cached = weights_cache_path(weights)
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
