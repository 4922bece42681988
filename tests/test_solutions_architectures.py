"""Do the architecture references agree with torchvision's real models and with measurement?"""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn
from torchvision import models

from solutions import architectures as ref


def layout(module: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(value.shape)) for name, value in module.state_dict().items()]


def on_meta(factory, *args, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return factory(*args, **kwargs)


def test_parameter_counts_are_torchvisions_and_the_papers():
    assert ref.parameter_count(on_meta(ref.resnet18)) == 11_689_512
    assert ref.parameter_count(on_meta(ref.alexnet_model)) == 61_100_840
    assert ref.parameter_count(ref.LeNet5()) == 61_706
    for arch in ["alexnet", "resnet18"]:
        meta = models.get_model_weights(arch).IMAGENET1K_V1.meta
        factory = ref.alexnet_model if arch == "alexnet" else ref.resnet18
        assert ref.parameter_count(on_meta(factory)) == meta["num_params"]


def test_lenet5_maps_32x32_images_to_logits():
    net = ref.LeNet5(3, 7).eval()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert [type(m) for m in net.features] == [nn.Conv2d, nn.Tanh, nn.AvgPool2d] * 2


@pytest.mark.parametrize("arch", ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg16_bn"])
def test_vgg_blocks_are_torchvisions_feature_stack_cut_at_each_pool(arch):
    features = on_meta(models.get_model, arch, weights=None).features
    blocks = [ref.vgg_block_reference(arch, i) for i in range(len(ref.vgg_blocks(arch)))]
    assert sum(len(block) for block in blocks) == len(features)
    rebuilt = [str(layer) for block in blocks for layer in block]
    assert rebuilt == [str(layer) for layer in features]


@pytest.mark.parametrize("name", list(ref.GOOGLENET_INCEPTIONS))
def test_inception_configurations_are_googlenets(name):
    googlenet = on_meta(models.googlenet, weights=None, init_weights=False, aux_logits=False)
    expected = layout(getattr(googlenet, name))
    assert layout(on_meta(ref.inception, *ref.GOOGLENET_INCEPTIONS[name])) == expected


def test_blocks_match_the_blocks_inside_torchvisions_resnets():
    resnet18 = on_meta(models.resnet18)
    assert layout(resnet18.layer1[0]) == layout(on_meta(ref.basic_block, 64, 64))
    assert layout(resnet18.layer2[0]) == layout(on_meta(ref.basic_block, 64, 128, 2))
    resnet50 = on_meta(models.resnet50)
    assert layout(resnet50.layer1[0]) == layout(on_meta(ref.bottleneck, 64, 64))
    assert layout(resnet50.layer1[1]) == layout(on_meta(ref.bottleneck, 256, 64))
    assert layout(resnet50.layer3[0]) == layout(on_meta(ref.bottleneck, 512, 256, 2))
    assert resnet50.layer3[0].conv2.stride == (2, 2)  # v1.5: the stride sits in the 3x3


def test_dense_block_matches_densenet121s_first_block():
    densenet = on_meta(models.densenet121)
    block = densenet.features.denseblock1
    assert layout(block) == layout(on_meta(ref.dense_block, 6, 64, 32, 4))
    assert layout(block.denselayer1) == layout(on_meta(ref.dense_layer, 64, 32, 4))


def test_dense_block_output_is_the_input_and_every_new_feature_map():
    block = ref.dense_block(3, 5, 4, 2).eval()
    x = torch.randn(2, 5, 6, 6)
    out = block(x)
    assert out.shape == (2, 5 + 3 * 4, 6, 6)
    assert torch.equal(out[:, :5], x)


def test_receptive_field_formula_agrees_with_the_measured_gradient_support():
    rng = random.Random(0)
    cases = [
        [],
        [(1, 1, 1)],
        [(3, 1, 1)] * 2,
        [(7, 2, 1), (3, 2, 1)],
        [(2, 1, 2**i) for i in range(5)],
    ]
    for _ in range(40):
        depth = rng.randint(1, 5)
        cases.append(
            [(rng.randint(1, 6), rng.randint(1, 3), rng.randint(1, 4)) for _ in range(depth)]
        )
    for layers in cases:
        assert ref.receptive_field(layers) == ref.gradient_support(layers), layers


def test_known_receptive_fields():
    assert ref.receptive_field([(3, 1, 1)] * 2) == 5
    assert ref.receptive_field([(3, 1, 1)] * 3) == 7
    assert ref.receptive_field([(2, 1, 2**i) for i in range(4)]) == 16  # WaveNet: 2^L
