"""Do the efficient-architecture references agree with torchvision's models and closed forms?"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models
from torchvision.models._utils import _make_divisible

from solutions import efficient as ref


def layout(module: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(value.shape)) for name, value in module.state_dict().items()]


def test_depthwise_separable_equals_the_two_modules():
    x = torch.randn(2, 6, 9, 8, dtype=torch.float64)
    depthwise = nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=6).double()
    pointwise = nn.Conv2d(6, 4, 1).double()
    got = ref.depthwise_separable_conv(
        x, depthwise.weight, pointwise.weight, depthwise.bias, pointwise.bias, stride=2, padding=1
    )
    assert torch.allclose(got, pointwise(depthwise(x)))


def test_inverted_residuals_are_the_blocks_of_torchvisions_mobilenet_v2():
    features = models.mobilenet_v2().features
    assert layout(features[1]) == layout(ref.inverted_residual(32, 16, 1, 1))
    assert layout(features[2]) == layout(ref.inverted_residual(16, 24, 2, 6))
    assert layout(features[3]) == layout(ref.inverted_residual(24, 24, 1, 6))
    assert features[3].use_res_connect and not features[2].use_res_connect


def test_mac_count_matches_closed_forms_and_torchvisions_metadata():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 3, groups=8))
    expected = 2 * (ref.conv_macs(3, 8, 3, 16, 16) + ref.conv_macs(8, 8, 3, 14, 14, groups=8))
    assert ref.mac_count(net, (2, 3, 32, 32)) == expected
    for arch in ["resnet18", "mobilenet_v2"]:
        gmacs = models.get_model_weights(arch).IMAGENET1K_V1.meta["_ops"]  # fvcore: 1 MAC = 1 op
        counted = ref.mac_count(models.get_model(arch).eval(), (1, 3, 224, 224))
        assert counted / 1e9 == pytest.approx(gmacs, rel=0.01)


def test_make_divisible_is_torchvisions_rule():
    for value in [x / 4 for x in range(1, 2000)]:
        for divisor in (3, 8, 16):
            assert ref.make_divisible(value, divisor) == _make_divisible(value, divisor)


def test_compound_scaling_keeps_the_baseline_at_phi_0_and_doubles_flops_per_step():
    assert ref.compound_scaling(0, ref.B0_STAGES)["stages"] == ref.B0_STAGES
    alpha, beta, gamma = 1.2, 1.1, 1.15
    assert alpha * beta**2 * gamma**2 == pytest.approx(2, abs=0.1)
    scaled = ref.compound_scaling(2, ref.B0_STAGES)
    assert scaled["resolution"] == round(224 * 1.15**2)
    assert all(c % 8 == 0 for c, _ in scaled["stages"])
    assert [n for _, n in scaled["stages"]] == [math.ceil(n * 1.44) for _, n in ref.B0_STAGES]


def test_cbam_reference_against_a_linear_layer_version():
    torch.manual_seed(0)
    module = ref.CBAM(12, reduction=4, kernel_size=5).double().eval()
    x = torch.randn(2, 12, 6, 7, dtype=torch.float64)
    w1, w2 = module.mlp[0].weight[:, :, 0, 0], module.mlp[2].weight[:, :, 0, 0]

    def mlp(v):  # (N, C) -> (N, C), the shared MLP as matrix products
        return torch.relu(v @ w1.T) @ w2.T

    channel = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.flatten(2).max(dim=2).values))
    y = x * channel[:, :, None, None]
    maps = torch.stack([y.mean(dim=1), y.max(dim=1).values], dim=1)
    expected = y * torch.sigmoid(F.conv2d(maps, module.spatial.weight, padding=2))
    with torch.no_grad():
        assert torch.allclose(module(x), expected)
    assert [name for name in module.state_dict()] == [
        "mlp.0.weight",
        "mlp.2.weight",
        "spatial.weight",
    ]
