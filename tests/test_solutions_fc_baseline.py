"""Do the m06_01 references follow PyTorch's conventions (the oracle is torch itself)?"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from solutions import fc_baseline as ref


def test_flatten_is_channel_by_channel_row_by_row():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    flat = ref.flatten(x)
    assert flat.shape == (2, 60)
    assert torch.equal(flat, nn.Flatten()(x))
    assert flat[1, 1 * 20 + 2 * 5 + 3] == x[1, 1, 2, 3]  # (c, i, j) -> c*H*W + i*W + j


def test_flatten_accepts_views_with_permuted_strides():
    x = torch.randn(2, 5, 6, 3).permute(0, 3, 1, 2)
    assert not x.is_contiguous()
    assert torch.equal(ref.flatten(x), x.contiguous().view(2, -1))


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 6)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_nn_linear_and_its_layout(shape, bias):
    layer = nn.Linear(6, 3, bias=bias).double()
    x = torch.randn(*shape, dtype=torch.float64)
    assert layer.weight.shape == (3, 6)  # (out_features, in_features)
    expected = x @ layer.weight.T + (layer.bias if bias else 0)
    torch.testing.assert_close(ref.linear(x, layer.weight, layer.bias), expected)
    torch.testing.assert_close(ref.linear(x, layer.weight, layer.bias), layer(x))


def test_mlp_layers_alternate_linear_and_relu_without_a_final_relu():
    layers = ref.mlp_layers(12, [8, 4], 3)
    kinds = [type(module) for module in layers]
    assert kinds == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert [type(module) for module in ref.mlp_layers(12, [], 3)] == [nn.Linear]


def test_the_reference_mlp_loads_the_stated_state_dict_strictly():
    layers = ref.mlp_layers(48, [16, 8], 5).double()
    model = ref.MLP(48, [16, 8], 5).double()
    state = ref.mlp_state_dict(layers)
    assert list(state) == [f"layers.{i}.{kind}" for i in (0, 2, 4) for kind in ("weight", "bias")]
    model.load_state_dict(state, strict=True)
    x = torch.randn(3, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(model(x), layers(x.flatten(1)))


@pytest.mark.parametrize(
    "config",
    [(3, 32, 32, [512, 256], 10), (1, 28, 28, [], 10), (2, 5, 7, [3, 4, 5], 6), (1, 1, 1, [1], 1)],
)
def test_parameter_count_is_what_the_modules_hold(config):
    channels, height, width, hidden, classes = config
    model = ref.MLP(channels * height * width, hidden, classes)
    expected = sum(p.numel() for p in model.parameters())
    count = ref.mlp_parameter_count(*config)
    assert type(count) is int and count == expected


def test_parameter_count_of_a_large_image_needs_no_memory():
    # (150528 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000
    assert ref.mlp_parameter_count(3, 224, 224, [4096, 4096], 1000) == 637_445_096


def test_shift_is_torch_roll_along_the_width():
    x = torch.arange(5.0).view(1, 1, 1, 5)
    assert ref.shift_images(x, 1).flatten().tolist() == [4.0, 0.0, 1.0, 2.0, 3.0]  # right
    assert ref.shift_images(x, -1).flatten().tolist() == [1.0, 2.0, 3.0, 4.0, 0.0]  # left
    assert torch.equal(ref.shift_images(x, 5), x)  # a full turn
    assert torch.equal(ref.shift_images(x, 7), ref.shift_images(x, 2))  # modulo the width


def test_shift_sensitivity_counts_changed_argmax_predictions():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5)).double()
    images = torch.randn(40, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        before = model(images).argmax(1)
        after = model(torch.roll(images, 2, dims=-1)).argmax(1)
    expected = (before != after).double().mean().item()
    assert 0 < expected < 1
    assert ref.shift_sensitivity(model, images, 2) == pytest.approx(expected)
    assert ref.shift_sensitivity(model, images, 0) == 0.0
    assert ref.shift_sensitivity(model, images, 8) == 0.0


def test_shift_sensitivity_of_a_pixelwise_model_is_zero_for_a_shift_invariant_readout():
    """Global average pooling after a 1x1 convolution ignores where things are."""
    model = nn.Sequential(
        nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    ).double()
    images = torch.randn(20, 3, 6, 6, dtype=torch.float64)
    assert ref.shift_sensitivity(model, images, 3) == 0.0
    assert F.mse_loss(model(images), model(torch.roll(images, 3, -1))).item() < 1e-20
