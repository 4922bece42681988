"""Hidden tests for m06_03_architectures: the student's modules hold torchvision's state dicts.

Each architecture is checked the same way. The judge draws a seeded state dict with the
names and shapes of the reference module (torchvision's AlexNet, VGG blocks, GoogLeNet's
``Inception``, ResNet's ``BasicBlock``, ``Bottleneck`` and ``resnet18``, DenseNet's
``_DenseLayer`` and ``_DenseBlock``; ``solutions.architectures.LeNet5`` for LeNet-5),
the student's module loads it with ``load_state_dict(strict=True)`` in the sandbox, and
its eval-mode output is compared with the float64 reference holding the same values.
Structure checks read names and shapes back through standard-library calls on handles,
so no large model crosses.

AlexNet's two large classifier weights (151 MB and 67 MB in float32) exceed what a frame
carries: the sandbox builds them with ``torch.as_strided`` from a small seeded base sent by
the judge (``W[o, i] = base[o + 7 i]``), and the judge builds the same view for the
reference. Tampering with that in the sandbox only changes the values the student's model
holds, which the judge's reference does not follow.

Receptive fields are checked against the gradient support of one output of a stack of
1-d convolutions with positive random weights (``solutions.architectures.gradient_support``).
"""

from __future__ import annotations

import math

import pytest
import torch

from autograder.fixtures import (
    compare_module,
    name_difference,
    on_meta,
    reference_eval,
    state_layout,
    student_eval,
)
from solutions import architectures as ref

# --------------------------------------------------------------------------- helpers


class View:
    """Names and shapes of a sandbox module's state, read through builtins there."""

    def __init__(self, student) -> None:
        self.student = student
        self.py = student.lib("builtins")
        self.op = student.lib("operator")

    def names(self, net) -> list[str]:
        items = self.student.lib("itertools").chain(net.named_parameters(), net.named_buffers())
        return self.py.list(self.py.map(self.op.itemgetter(0), items))

    def shapes(self, net) -> list[list[int]]:
        tensors = self.student.lib("itertools").chain(net.parameters(), net.buffers())
        shapes = self.py.map(self.op.attrgetter("shape"), tensors)
        return self.py.list(self.py.map(self.py.get("list"), shapes))


def check_layout(check, view: View, net, expected: list[tuple[str, list[int]]], what: str):
    """The sandbox module's state names and shapes equal ``expected``'s, in order."""
    names, shapes = view.names(net), view.shapes(net)
    expected_names = [name for name, _ in expected]
    if names != expected_names:
        check.fail(f"state dict names differ from {what}: {name_difference(names, expected_names)}")
    for name, got, (_, want) in zip(names, shapes, expected):
        if got != want:
            check.fail(f"{name} has shape {tuple(got)}, {what} has {tuple(want)}")


def parameter_count(student, net) -> int:
    """``sum(p.numel() for p in net.parameters())``, computed in the sandbox."""
    py = student.lib("builtins")
    return py.sum(py.map(student.lib("torch").get("numel"), net.parameters()))


def load_with_strided(student, net, state, strided) -> None:
    """``net.load_state_dict(state | views, strict=True)`` where the views are built in the
    sandbox with ``torch.as_strided`` from small bases (nothing large crosses)."""
    py = student.lib("builtins")
    names = list(strided)
    views = py.map(
        student.lib("torch").get("as_strided"),
        [strided[n][0].float() for n in names],
        [list(strided[n][1]) for n in names],
        [list(strided[n][2]) for n in names],
    )
    items = student.lib("itertools").chain(list(state.items()), py.zip(names, views))
    box = student.lib("collections").deque(py.map(py.get("dict"), [items]))
    student.lib("collections").deque(py.map(net.get("load_state_dict"), box), 0)


def hankel(inputs, name: str, size: tuple[int, int], step: int = 7):
    """``(base, size, stride)`` for ``W[o, i] = base[o + step * i]``, fan-in scaled."""
    rows, cols = size
    base = inputs.randn(rows + step * (cols - 1)) / math.sqrt(cols)
    return base, size, (1, step)


def image_case(label: str, *values):
    return pytest.param(*values, id=label)


# --------------------------------------------------------------------------- LeNet-5

LENET_LAYOUTS = [(1, 10), (3, 10), (3, 7)]


@pytest.mark.parametrize(
    "in_channels, classes",
    LENET_LAYOUTS,
    ids=[f"LeNet5(in_channels={c}, num_classes={k})" for c, k in LENET_LAYOUTS],
)
def test_lenet_structure(student, check, reference, in_channels, classes):
    expected = reference(lambda: state_layout(on_meta(ref.LeNet5, in_channels, classes)))
    net = student.LeNet5(in_channels, classes)
    check_layout(check, View(student), net, expected, "the stated LeNet-5 layout")
    parameters = reference(lambda: ref.parameter_count(on_meta(ref.LeNet5, in_channels, classes)))
    check.equal(parameter_count(student, net), parameters, "parameter count")


LENET_CASES = [
    image_case("x (4, 1, 32, 32), 10 classes", (4, 1, 32, 32), 10),
    image_case("x (3, 3, 32, 32), 10 classes", (3, 3, 32, 32), 10),
    image_case("x (2, 3, 32, 32), 7 classes", (2, 3, 32, 32), 7),
]


@pytest.mark.parametrize("shape, classes", LENET_CASES)
def test_lenet_forward(student, check, inputs, reference, shape, classes):
    args = (shape[1], classes)
    state = inputs.state_dict(on_meta(ref.LeNet5, *args))
    x = inputs.randn(*shape)
    expected = reference(lambda: reference_eval(ref.LeNet5, args, state, x))
    check.close(student_eval(student, "LeNet5", args, state, x), expected, "logits")


# --------------------------------------------------------------------------- AlexNet


@pytest.mark.parametrize("classes", [1000, 10], ids=lambda k: f"AlexNet(num_classes={k})")
def test_alexnet_structure(student, check, reference, classes):
    expected = reference(lambda: state_layout(on_meta(ref.alexnet_model, classes)))
    net = student.AlexNet(classes)
    check_layout(check, View(student), net, expected, "torchvision's AlexNet")
    parameters = reference(lambda: ref.parameter_count(on_meta(ref.alexnet_model, classes)))
    check.equal(parameter_count(student, net), parameters, "parameter count")


ALEXNET_CASES = [
    image_case("x (2, 3, 64, 64), 10 classes", (2, 3, 64, 64), 10),
    image_case("x (1, 3, 224, 224), 1000 classes", (1, 3, 224, 224), 1000),
]
ALEXNET_LARGE = {"classifier.1.weight": (4096, 9216), "classifier.4.weight": (4096, 4096)}


@pytest.mark.parametrize("shape, classes", ALEXNET_CASES)
def test_alexnet_forward(student, check, inputs, reference, shape, classes):
    template = on_meta(ref.alexnet_model, classes)
    state = inputs.state_dict(template, skip=ALEXNET_LARGE)
    strided = {name: hankel(inputs, name, size) for name, size in ALEXNET_LARGE.items()}
    x = inputs.rand(*shape)
    views = {
        name: torch.as_strided(base.float(), size, stride)
        for name, (base, size, stride) in strided.items()
    }
    expected = reference(lambda: reference_eval(ref.alexnet_model, (classes,), state, x, views))
    net = student.AlexNet(classes)
    load_with_strided(student, net, state, strided)
    net.to(student.device)
    net.eval()
    got = net(x.float())
    check.close(got, expected, "logits in eval mode (dropout off)")


# --------------------------------------------------------------------------- VGG


def vgg_case(arch: str, index: int, shape: tuple):
    num_convs, in_channels, out_channels = ref.vgg_blocks(arch)[index]
    label = f"{arch} block {index + 1}: VGGBlock({num_convs}, {in_channels}, {out_channels}"
    label += ", batch_norm=True)" if arch.endswith("_bn") else ")"
    return pytest.param(arch, index, shape, id=f"{label}, x {shape}")


def check_vgg(student, check, inputs, reference, arch, index, shape):
    num_convs, in_channels, out_channels = ref.vgg_blocks(arch)[index]
    args = (num_convs, in_channels, out_channels, arch.endswith("_bn"))
    block = reference(lambda: ref.vgg_block_reference(arch, index))
    state = inputs.state_dict(block)
    x = inputs.randn(*shape)

    def factory(*args):
        return ref.vgg_block_reference(arch, index)

    expected = reference(lambda: reference_eval(factory, args, state, x))
    check.close(student_eval(student, "VGGBlock", args, state, x), expected)


@pytest.mark.parametrize(
    "arch, index, shape",
    [
        vgg_case("vgg11", 0, (2, 3, 16, 16)),
        vgg_case("vgg16", 1, (2, 64, 8, 8)),
        vgg_case("vgg16", 2, (1, 128, 7, 9)),
        vgg_case("vgg19", 3, (1, 256, 4, 4)),
    ],
)
def test_vgg_block_plain(student, check, inputs, reference, arch, index, shape):
    check_vgg(student, check, inputs, reference, arch, index, shape)


@pytest.mark.parametrize(
    "arch, index, shape",
    [vgg_case("vgg11_bn", 0, (2, 3, 12, 12)), vgg_case("vgg16_bn", 1, (2, 64, 9, 8))],
)
def test_vgg_block_batchnorm(student, check, inputs, reference, arch, index, shape):
    check_vgg(student, check, inputs, reference, arch, index, shape)


# --------------------------------------------------------------------------- Inception


def inception_case(label: str, args: tuple, shape: tuple):
    return pytest.param(args, shape, id=f"{label}: Inception{args}, x {shape}")


def check_inception(student, check, inputs, reference, args, shape):
    compare_module(student, check, inputs, reference, ref.inception, "Inception", args, shape)


@pytest.mark.parametrize(
    "args, shape",
    [
        inception_case("inception3a", ref.GOOGLENET_INCEPTIONS["inception3a"], (2, 192, 8, 8)),
        inception_case("inception4e", ref.GOOGLENET_INCEPTIONS["inception4e"], (1, 528, 7, 7)),
    ],
)
def test_inception_googlenet(student, check, inputs, reference, args, shape):
    check_inception(student, check, inputs, reference, args, shape)


@pytest.mark.parametrize(
    "args, shape",
    [
        inception_case("small", (8, 4, 3, 6, 2, 5, 3), (2, 8, 5, 9)),
        inception_case("one pixel", (6, 2, 4, 3, 3, 4, 1), (3, 6, 1, 1)),
        inception_case("wide reductions", (5, 7, 5, 5, 5, 5, 2), (1, 5, 6, 4)),
    ],
)
def test_inception_small(student, check, inputs, reference, args, shape):
    check_inception(student, check, inputs, reference, args, shape)


# --------------------------------------------------------------------------- residual blocks


def block_case(label: str, args: tuple, shape: tuple):
    return pytest.param(args, shape, id=f"{label}: {args}, x {shape}")


@pytest.mark.parametrize(
    "args, shape",
    [
        block_case("identity shortcut", (16, 16, 1), (2, 16, 8, 8)),
        block_case("projection, stride 2", (16, 32, 2), (2, 16, 8, 8)),
        block_case("projection, stride 2, same width, odd size", (8, 8, 2), (2, 8, 7, 7)),
        block_case("projection, stride 1, wider", (8, 24, 1), (1, 8, 5, 6)),
    ],
)
def test_basic_block(student, check, inputs, reference, args, shape):
    compare_module(student, check, inputs, reference, ref.basic_block, "BasicBlock", args, shape)


@pytest.mark.parametrize(
    "args, shape",
    [
        block_case("identity shortcut", (64, 16, 1), (2, 64, 6, 6)),
        block_case("projection, stride 1", (16, 8, 1), (2, 16, 5, 5)),
        block_case("projection, stride 2, odd size", (32, 16, 2), (2, 32, 7, 7)),
        block_case("projection, stride 2, even size", (64, 16, 2), (1, 64, 8, 6)),
    ],
)
def test_bottleneck(student, check, inputs, reference, args, shape):
    compare_module(student, check, inputs, reference, ref.bottleneck, "Bottleneck", args, shape)


# --------------------------------------------------------------------------- ResNet-18


@pytest.mark.parametrize("classes", [1000, 10], ids=lambda k: f"ResNet18(num_classes={k})")
def test_resnet18_structure(student, check, reference, classes):
    expected = reference(lambda: state_layout(on_meta(ref.resnet18, classes)))
    net = student.ResNet18(classes)
    check_layout(check, View(student), net, expected, "torchvision's resnet18")
    parameters = reference(lambda: ref.parameter_count(on_meta(ref.resnet18, classes)))
    check.equal(parameter_count(student, net), parameters, "parameter count")


RESNET_CASES = [
    image_case("x (2, 3, 64, 64), 1000 classes", (2, 3, 64, 64), 1000),
    image_case("x (3, 3, 32, 32), 10 classes", (3, 3, 32, 32), 10),
]


@pytest.mark.parametrize("shape, classes", RESNET_CASES)
def test_resnet18_forward(student, check, inputs, reference, shape, classes):
    state = inputs.state_dict(on_meta(ref.resnet18, classes))
    x = inputs.randn(*shape)
    expected = reference(lambda: reference_eval(ref.resnet18, (classes,), state, x))
    check.close(student_eval(student, "ResNet18", (classes,), state, x), expected, "logits")


# --------------------------------------------------------------------------- DenseNet


@pytest.mark.parametrize(
    "args, shape",
    [
        block_case("densenet121's layer", (64, 32, 4), (2, 64, 8, 8)),
        block_case("small", (10, 6, 2), (2, 10, 5, 7)),
    ],
)
def test_dense_layer(student, check, inputs, reference, args, shape):
    compare_module(student, check, inputs, reference, ref.dense_layer, "DenseLayer", args, shape)


@pytest.mark.parametrize(
    "args, shape",
    [
        block_case("densenet121's denseblock1", (6, 64, 32, 4), (1, 64, 8, 8)),
        block_case("small", (3, 10, 6, 2), (2, 10, 5, 7)),
        block_case("one layer", (1, 4, 3, 4), (2, 4, 3, 3)),
    ],
)
def test_dense_block(student, check, inputs, reference, args, shape):
    compare_module(student, check, inputs, reference, ref.dense_block, "DenseBlock", args, shape)


# --------------------------------------------------------------------------- receptive field

STRIDED = {
    "two 3x3 convolutions": [(3, 1, 1)] * 2,
    "VGG-16 to pool3": [(3, 1, 1), (3, 1, 1), (2, 2, 1)] * 2 + [(3, 1, 1)] * 3 + [(2, 2, 1)],
    "AlexNet features": [(11, 4, 1), (3, 2, 1), (5, 1, 1), (3, 2, 1)]
    + [(3, 1, 1)] * 3
    + [(3, 2, 1)],
    "ResNet stem": [(7, 2, 1), (3, 2, 1)],
    "mixed strides": [(5, 3, 1), (4, 2, 1), (3, 5, 1), (1, 1, 1)],
    "one 1x1 convolution": [(1, 1, 1)],
    "no layers": [],
}
DILATED = {
    "WaveNet stack": [(2, 1, 1), (2, 1, 2), (2, 1, 4), (2, 1, 8)],
    "dilations after a stride": [(3, 2, 1), (3, 1, 2), (3, 1, 4)],
    "dilated and strided": [(3, 1, 2), (3, 2, 3), (5, 1, 5), (2, 2, 1)],
}


@pytest.mark.parametrize("name", list(STRIDED))
def test_rf_stride(student, check, reference, name):
    layers = STRIDED[name]
    expected = reference(lambda: ref.gradient_support(layers))
    check.equal(student.receptive_field(list(layers)), expected, "receptive field")


@pytest.mark.parametrize("name", list(DILATED))
def test_rf_dilation(student, check, reference, name):
    layers = DILATED[name]
    expected = reference(lambda: ref.gradient_support(layers))
    check.equal(student.receptive_field(list(layers)), expected, "receptive field")
