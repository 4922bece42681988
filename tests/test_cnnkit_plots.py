"""cnnkit.plots: image grids and feature maps draw what they are given, one image per axis."""

from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tests.conftest import load_cnnkit  # noqa: E402

cnnkit = load_cnnkit()


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _drawn(fig) -> list:
    """The axes that show an image, in grid order."""
    return [ax for ax in fig.axes if ax.images]


def test_show_images_lays_out_a_grid_with_one_image_per_axis():
    images = torch.rand(10, 3, 6, 5)
    fig = cnnkit.show_images(images, titles=list("abcdefghij"), ncols=4, scale=1.0)
    assert len(fig.axes) == 12, "3 rows of 4"
    assert tuple(fig.get_size_inches()) == pytest.approx((4.0, 3.0))
    drawn = _drawn(fig)
    assert drawn == fig.axes[:10], "the first 10 axes show the images, the last 2 are blank"
    for index, ax in enumerate(drawn):
        assert np.allclose(ax.images[0].get_array(), images[index].permute(1, 2, 0).numpy())
        assert ax.get_title() == "abcdefghij"[index]
    assert all(not ax.axison for ax in fig.axes), "axes are hidden"
    fig.canvas.draw()


def test_show_images_clamps_colour_images_to_the_unit_range(caplog):
    """Clamped before matplotlib sees them: no "Clipping input data" warning in notebooks."""
    images = torch.linspace(-1, 2, 3 * 4 * 4).view(1, 3, 4, 4)
    with caplog.at_level(logging.WARNING, logger="matplotlib"):
        fig = cnnkit.show_images(images)
    assert not [r for r in caplog.records if "Clipping" in r.getMessage()]
    shown = np.asarray(fig.axes[0].images[0].get_array())
    assert shown.shape == (4, 4, 3) and shown.min() == 0.0 and shown.max() == 1.0
    assert np.allclose(shown, images[0].permute(1, 2, 0).clamp(0, 1).numpy())


def test_show_images_uses_only_as_many_columns_as_images():
    fig = cnnkit.show_images(torch.rand(3, 3, 4, 4), ncols=8)
    assert len(fig.axes) == 3 and len(_drawn(fig)) == 3
    assert all(ax.get_title() == "" for ax in fig.axes), "no titles unless given"


def test_show_images_draws_one_channel_images_with_a_colour_map():
    images = torch.rand(2, 1, 5, 7, requires_grad=True)  # detached inside
    default = cnnkit.show_images(images)
    grey = cnnkit.show_images(images, cmap="gray")
    assert default.axes[0].images[0].get_array().shape == (5, 7)
    assert default.axes[0].images[0].get_cmap().name == "viridis"
    assert grey.axes[1].images[0].get_cmap().name == "gray"
    assert np.allclose(grey.axes[1].images[0].get_array(), images[1, 0].detach().numpy())


def test_show_feature_maps_shows_at_most_max_maps_channels_each_with_its_own_scale():
    maps = torch.randn(20, 5, 5) * torch.arange(1, 21).view(20, 1, 1)  # very different ranges
    fig = cnnkit.show_feature_maps(maps, title="conv1", max_maps=16, ncols=8)
    assert len(fig.axes) == 16 and len(_drawn(fig)) == 16
    assert [ax.get_title() for ax in fig.axes] == [f"ch {i}" for i in range(16)]
    assert fig._suptitle is not None and fig._suptitle.get_text() == "conv1"
    for index, ax in enumerate(fig.axes):
        image = ax.images[0]
        assert image.get_cmap().name == "magma"
        assert image.norm.vmin == pytest.approx(float(maps[index].min()))
        assert image.norm.vmax == pytest.approx(float(maps[index].max()))


def test_show_feature_maps_with_few_channels_and_no_title():
    fig = cnnkit.show_feature_maps(torch.rand(3, 4, 4), max_maps=16, ncols=2)
    assert len(fig.axes) == 4 and len(_drawn(fig)) == 3, "2 rows of 2, one left blank"
    assert fig._suptitle is None
