"""Figures the notebooks share: image grids and feature maps."""

from __future__ import annotations

import torch

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
