"""cnnkit.style: procedural styles, the ImageNet normalisation, VGG-19 features, adversarial plots."""

from __future__ import annotations

import contextlib
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torchvision.models import VGG19_Weights  # noqa: E402
from torchvision.transforms import Normalize  # noqa: E402

from tests.conftest import load_cnnkit  # noqa: E402

cnnkit = load_cnnkit()

VGG19_CONVS_PER_BLOCK = [2, 2, 4, 4, 4]


# --------------------------------------------------------------------------- procedural styles


@pytest.mark.parametrize("kind", ["stripes", "checkers", "swirl"])
def test_procedural_style_is_a_reproducible_image_in_the_unit_range(kind):
    image = cnnkit.procedural_style(kind, size=48, seed=3)
    assert image.shape == (3, 48, 48) and image.dtype == torch.float32
    assert image.min() >= 0 and image.max() <= 1
    assert torch.equal(image, cnnkit.procedural_style(kind, size=48, seed=3))
    assert not torch.equal(image, cnnkit.procedural_style(kind, size=48, seed=4))
    assert image.std() > 0.1, "a pattern of two contrasting colours, not a flat image"


def test_procedural_style_kinds_differ_and_sizes_are_honoured():
    images = [cnnkit.procedural_style(kind, size=32, seed=0) for kind in cnnkit.STYLE_KINDS]
    assert cnnkit.STYLE_KINDS == ("stripes", "checkers", "swirl")
    for i in range(3):
        for j in range(i + 1, 3):
            assert (images[i] - images[j]).abs().mean() > 0.05
    assert cnnkit.procedural_style("swirl", size=17).shape == (3, 17, 17)
    assert cnnkit.procedural_style("stripes").shape == (3, 128, 128), "default size"


def test_checkers_are_made_of_two_colours():
    image = cnnkit.procedural_style("checkers", size=64, seed=1)
    pixels = image.flatten(1).T  # (size * size, 3)
    first = pixels[0]
    far = pixels[(pixels - first).abs().max(1).values.argmax()]
    near_either = torch.minimum(
        (pixels - first).abs().max(1).values, (pixels - far).abs().max(1).values
    )
    assert (near_either < 0.2).float().mean() > 0.95, (
        "every pixel is one colour plus a little noise"
    )


def test_procedural_style_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="unknown style 'dots'"):
        cnnkit.procedural_style("dots")


# --------------------------------------------------------------------------- ImageNet normalisation


def test_imagenet_normalize_matches_torchvision_normalize():
    x = torch.rand(2, 3, 5, 4)
    expected = Normalize(cnnkit.IMAGENET_MEAN, cnnkit.IMAGENET_STD)(x)
    layer = cnnkit.ImageNetNormalize()
    assert torch.allclose(layer(x), expected, atol=1e-6)
    assert cnnkit.IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert cnnkit.IMAGENET_STD == (0.229, 0.224, 0.225)


def test_imagenet_normalize_statistics_are_buffers_that_follow_the_module():
    layer = cnnkit.ImageNetNormalize().double()
    assert list(layer.parameters()) == [], "nothing to train"
    assert set(dict(layer.named_buffers())) == {"mean", "std"}
    x = torch.rand(1, 3, 2, 2, dtype=torch.float64)
    assert layer(x).dtype == torch.float64


# --------------------------------------------------------------------------- VGG-19 features


@pytest.fixture(scope="module")
def vgg_full(tmp_path_factory):
    """``vgg19_features()`` offline (an empty torch hub, no download), built once (~2 s).

    Returns ``(model, names, printed)``.
    """
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        patch.delenv("CNNKIT_DOWNLOAD", raising=False)
        model, names = cnnkit.vgg19_features()
    return model, names, printed.getvalue()


def test_vgg19_without_cached_weights_says_it_is_random(vgg_full):
    *_, printed = vgg_full
    assert "ImageNet weights not found" in printed and "RANDOM weights" in printed


def test_vgg19_layer_names_follow_the_paper(vgg_full):
    model, names, _ = vgg_full
    assert len(model) == len(names) == 1 + 16 * 2 + 5
    assert names[:6] == ["normalize", "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names[-1] == "pool5" and len(set(names)) == len(names)
    assert isinstance(model[0], cnnkit.ImageNetNormalize)
    for block, count in enumerate(VGG19_CONVS_PER_BLOCK, start=1):
        convs = [n for n in names if n.startswith(f"conv{block}_")]
        assert convs == [f"conv{block}_{i}" for i in range(1, count + 1)]
    kinds = {"conv": torch.nn.Conv2d, "relu": torch.nn.ReLU, "pool": torch.nn.MaxPool2d}
    for layer, name in zip(list(model)[1:], names[1:]):
        assert isinstance(layer, kinds[name[:4]]), name
    assert model[names.index("conv3_1")].in_channels == 128
    assert model[names.index("conv5_4")].out_channels == 512


def test_vgg19_is_frozen_and_in_eval_mode(vgg_full):
    model, _, _ = vgg_full
    assert not model.training and not any(m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())


def test_vgg19_truncates_and_falls_back_to_the_same_seeded_weights_on_a_damaged_cache(
    vgg_full, tmp_path, monkeypatch, capsys
):
    """A damaged cached file is reported, then the seeded random network is used: the
    truncated model is exactly the full model's prefix."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("CNNKIT_DOWNLOAD", raising=False)
    checkpoints = tmp_path / "torch_home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    name = VGG19_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    (checkpoints / name).write_bytes(b"not a model")
    model, names = cnnkit.vgg19_features(last_layer="relu3_1")
    out = capsys.readouterr().out
    assert "could not load the ImageNet weights" in out and "RANDOM weights" in out
    full, full_names, _ = vgg_full
    assert names == full_names[: full_names.index("relu3_1") + 1]
    assert names[-1] == "relu3_1" and len(model) == len(names) == 13
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        assert torch.equal(model(x), full[: len(names)](x))
        assert model(x).shape == (1, 256, 6, 6)


# --------------------------------------------------------------------------- adversarial plots


@pytest.fixture
def close_figures():
    yield
    plt.close("all")


def test_show_adversarial_draws_clean_perturbation_and_adversarial_rows(close_figures):
    clean = torch.full((4, 3, 5, 5), 0.5)
    delta = torch.zeros_like(clean)
    delta[:, :, 0, 0], delta[:, :, 1, 1] = 0.05, -0.025
    fig = cnnkit.show_adversarial(
        clean, clean + delta, clean_titles=list("abcd"), adversarial_titles=list("wxyz")
    )
    assert len(fig.axes) == 12
    axes = np.array(fig.axes).reshape(3, 4)
    assert [axes[row, 0].get_ylabel() for row in range(3)] == [
        "clean",
        "perturbation (x10)",
        "adversarial",
    ]
    assert [ax.get_title() for ax in axes[0]] == list("abcd")
    assert [ax.get_title() for ax in axes[1]] == [""] * 4
    assert [ax.get_title() for ax in axes[2]] == list("wxyz")
    perturbation = np.asarray(axes[1, 2].images[0].get_array())
    assert perturbation.shape == (5, 5, 3)
    assert perturbation[0, 0] == pytest.approx([1.0] * 3), "the largest change is full colour"
    assert perturbation[1, 1] == pytest.approx([0.25] * 3)
    assert perturbation[2, 2] == pytest.approx([0.5] * 3), "no change is grey"
    adversarial = np.asarray(axes[2, 3].images[0].get_array())
    assert np.allclose(adversarial, (clean + delta)[3].permute(1, 2, 0).numpy())
    fig.canvas.draw()


def test_show_adversarial_without_a_perturbation_is_grey(close_figures):
    clean = torch.rand(1, 3, 4, 4, requires_grad=True)
    fig = cnnkit.show_adversarial(clean, clean)
    assert len(fig.axes) == 3
    assert np.allclose(fig.axes[1].images[0].get_array(), 0.5)
