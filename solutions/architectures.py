"""References for m06_03_architectures: torchvision's own modules, and two small oracles.

The oracle for every architecture torchvision ships is torchvision itself: its AlexNet,
the blocks of its VGG feature stacks, GoogLeNet's ``Inception``, ResNet's ``BasicBlock``
and ``Bottleneck`` (v1.5: the stride sits in the 3x3 convolution), ``resnet18`` and
DenseNet's ``_DenseLayer`` and ``_DenseBlock``. A student's module must load their
state dicts strictly and give the same outputs (BatchNorm in eval mode). LeNet-5 has no
torchvision model; its reference is the layout below, written out with ``nn`` layers.

The receptive field has two references that must agree (``tests/`` checks it):
the formula r = 1 + sum_l (k'_l - 1) * prod_{i<l} s_i with dilated kernels
k' = d (k - 1) + 1, and the gradient support of one output of a stack of
convolutions with positive random weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.models import densenet, resnet, vgg
from torchvision.models.alexnet import AlexNet
from torchvision.models.googlenet import Inception

# --------------------------------------------------------------------------- LeNet-5


class LeNet5(nn.Module):
    """LeNet-5 on 32x32 images: tanh activations and average-pool subsampling.

    features: Conv(C, 6, 5) tanh AvgPool(2) Conv(6, 16, 5) tanh AvgPool(2) -> (16, 5, 5);
    classifier: Linear(400, 120) tanh Linear(120, 84) tanh Linear(84, K).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5),
            nn.Tanh(),
            nn.AvgPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.Tanh(),
            nn.AvgPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            nn.Tanh(),
            nn.Linear(120, 84),
            nn.Tanh(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


# --------------------------------------------------------------------------- torchvision


def alexnet_model(num_classes: int = 1000) -> nn.Module:
    """torchvision's AlexNet: the layout of section 12.3.2, 61,100,840 parameters."""
    return AlexNet(num_classes=num_classes)


# VGG's configurations as torchvision writes them: widths, "M" for a max pool.
VGG_CONFIGS = {name: list(config) for name, config in vgg.cfgs.items()}
VGG_ARCHS = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}


def vgg_blocks(arch: str) -> list[tuple[int, int, int]]:
    """``(num_convs, in_channels, out_channels)`` of each block of torchvision's ``arch``."""
    blocks, convs, width, previous = [], 0, 3, 3
    for item in VGG_CONFIGS[VGG_ARCHS[arch.removesuffix("_bn")]]:
        if item == "M":
            blocks.append((convs, previous, width))
            convs, previous = 0, width
        else:
            convs, width = convs + 1, int(item)
    return blocks


def vgg_block_reference(arch: str, index: int) -> nn.Sequential:
    """Block ``index`` of torchvision's ``arch`` (``vgg16``, ``vgg16_bn``, ...) features,
    renumbered from 0 (conv, [bn,] relu, ..., max pool)."""
    with torch.device("meta"):
        features = vgg.__dict__[arch](weights=None).features
    starts = [0] + [i + 1 for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
    layers = list(features)[starts[index] : starts[index + 1]]
    num_convs, in_channels, out_channels = vgg_blocks(arch)[index]
    block = vgg_block(num_convs, in_channels, out_channels, batch_norm=arch.endswith("_bn"))
    assert [type(m) for m in block] == [type(m) for m in layers]
    return block


def vgg_block(
    num_convs: int, in_channels: int, out_channels: int, batch_norm: bool = False
) -> nn.Sequential:
    """torchvision's ``make_layers`` for one block: (conv3x3 pad 1, [BN,] ReLU) x n, max pool 2."""
    layers: list[nn.Module] = []
    for i in range(num_convs):
        layers.append(
            nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1)
        )
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def inception(
    in_channels: int,
    ch1x1: int,
    ch3x3red: int,
    ch3x3: int,
    ch5x5red: int,
    ch5x5: int,
    pool_proj: int,
) -> nn.Module:
    """GoogLeNet's Inception module as torchvision builds it (its "5x5" branch is 3x3)."""
    return Inception(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)


# GoogLeNet's nine Inception modules (torchvision's arguments), by name.
GOOGLENET_INCEPTIONS = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


def projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """ResNet's projection shortcut: a 1x1 convolution (no bias) with the stride, BatchNorm."""
    return nn.Sequential(
        resnet.conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels)
    )


def basic_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
    """torchvision's BasicBlock, with the projection shortcut when the shape changes."""
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = projection(in_channels, out_channels, stride)
    return resnet.BasicBlock(in_channels, out_channels, stride, downsample)


def bottleneck(in_channels: int, planes: int, stride: int = 1) -> nn.Module:
    """torchvision's Bottleneck (v1.5: stride in the 3x3), output planes * 4 channels."""
    downsample = None
    if stride != 1 or in_channels != planes * resnet.Bottleneck.expansion:
        downsample = projection(in_channels, planes * resnet.Bottleneck.expansion, stride)
    return resnet.Bottleneck(in_channels, planes, stride, downsample)


def resnet18(num_classes: int = 1000) -> nn.Module:
    """torchvision's ResNet-18: 11,689,512 parameters for 1000 classes."""
    return resnet.resnet18(weights=None, num_classes=num_classes)


def dense_layer(in_channels: int, growth_rate: int, bn_size: int = 4) -> nn.Module:
    """torchvision's _DenseLayer (BN-ReLU-1x1 conv to bn_size*k, BN-ReLU-3x3 conv to k)."""
    return densenet._DenseLayer(in_channels, growth_rate, bn_size, drop_rate=0.0)


def dense_block(num_layers: int, in_channels: int, growth_rate: int, bn_size: int = 4) -> nn.Module:
    """torchvision's _DenseBlock: output = cat(input, every layer's new features)."""
    return densenet._DenseBlock(num_layers, in_channels, bn_size, growth_rate, drop_rate=0.0)


def parameter_count(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


# --------------------------------------------------------------------------- receptive field


def receptive_field(layers: list[tuple[int, int, int]]) -> int:
    """r = 1 + sum_l (k'_l - 1) * prod_{i<l} s_i with k' = d (k - 1) + 1, for layers
    ``(kernel, stride, dilation)`` in forward order (an empty stack: 1)."""
    r, jump = 1, 1
    for kernel, stride, dilation in layers:
        r += dilation * (kernel - 1) * jump
        jump *= stride
    return r


def gradient_support(layers: list[tuple[int, int, int]], seed: int = 0) -> int:
    """The receptive field measured: the width of the input region that reaches one output
    of a stack of 1-d convolutions with positive random weights (no padding, float64).

    The input is long enough for the formula's bound (checked, not assumed): the support of
    the output in the middle of the output row is counted from the input gradient.
    """
    generator = torch.Generator().manual_seed(seed)
    jump = math.prod(stride for _, stride, _ in layers)
    length = 3 * jump + 2 * sum(d * (k - 1) * jump for k, _, d in layers) + 1
    convs = [
        nn.Conv1d(1, 1, kernel, stride=stride, dilation=dilation, bias=False).double()
        for kernel, stride, dilation in layers
    ]
    with torch.no_grad():
        for conv in convs:
            conv.weight.copy_(0.1 + torch.rand(conv.weight.shape, generator=generator))
    x = (0.1 + torch.rand(1, 1, length, generator=generator, dtype=torch.float64)).requires_grad_()
    y = x
    for conv in convs:
        y = conv(y)
    centre = y.shape[-1] // 2
    y[0, 0, centre].backward()
    touched = torch.nonzero(x.grad[0, 0]).flatten()
    first, last = int(touched.min()), int(touched.max())
    if first == 0 or last == length - 1:
        raise ValueError("the input is too short for this stack")  # never, by the bound above
    return last - first + 1
