"""Hidden tests for m06_01_fc_baseline: seeded cases against PyTorch's own modules.

Inputs are float32 (what students use) except for ``shift_sensitivity``, whose
models are float64 networks built in the sandbox from seeded specs
(``cnnkit.build_model``), so the student's predictions and the reference's agree
exactly. References come from ``solutions/fc_baseline.py``: ``torch.flatten``,
``F.linear``, an ``nn.Sequential`` of ``nn.Linear``/``nn.ReLU`` whose state dict the
student's MLP loads strictly, ``sum(p.numel())`` and ``torch.roll``.
"""

from __future__ import annotations

import pytest
import torch

from autograder.fixtures import trusted_model
from solutions import fc_baseline as ref

# --------------------------------------------------------------------------- flatten

FLATTEN_SHAPES = [(2, 3, 4, 5), (1, 3, 8, 8), (4, 1, 5, 7), (3, 2, 1, 6)]


@pytest.mark.parametrize("shape", FLATTEN_SHAPES, ids=lambda s: f"x {s}")
def test_flatten_order(student, check, inputs, shape):
    x = inputs.randn(*shape).float()
    check.close(student.flatten(x), ref.flatten(x.double()))


NONCONTIGUOUS = [
    pytest.param((2, 5, 6, 3), (0, 3, 1, 2), id="channels-last tensor (2, 3, 5, 6)"),
    pytest.param((3, 2, 7, 4), (0, 1, 3, 2), id="transposed images (3, 2, 4, 7)"),
]


@pytest.mark.parametrize("stored, order", NONCONTIGUOUS)
def test_flatten_noncontiguous(student, check, inputs, stored, order):
    x = inputs.randn(*stored).float().permute(*order)  # a view: not contiguous
    check.close(student.flatten(x), ref.flatten(x.double()))


# --------------------------------------------------------------------------- linear


def linear_case(x_shape: tuple, out_features: int, bias: bool = True):
    label = f"x {x_shape}, weight ({out_features}, {x_shape[-1]})" + ("" if bias else ", bias=None")
    return pytest.param(x_shape, out_features, bias, id=label)


def check_linear(student, check, inputs, x_shape, out_features, bias) -> None:
    x = inputs.randn(*x_shape).float()
    w = inputs.randn(out_features, x_shape[-1]).float()
    b = inputs.randn(out_features).float() if bias else None
    expected = ref.linear(x.double(), w.double(), None if b is None else b.double())
    check.close(student.linear(x, w, b), expected)


LINEAR_ARGS = "x_shape, out_features, bias"


@pytest.mark.parametrize(
    LINEAR_ARGS,
    [
        linear_case((4, 6), 3),
        linear_case((5, 7), 7),
        linear_case((1, 12), 10),
        linear_case((8, 3), 16),
    ],
)
def test_linear_values(student, check, inputs, x_shape, out_features, bias):
    check_linear(student, check, inputs, x_shape, out_features, bias)


@pytest.mark.parametrize(
    LINEAR_ARGS,
    [
        linear_case((4, 6), 3, bias=False),
        linear_case((2, 3, 5), 4),
        linear_case((2, 2, 3, 6), 5, bias=False),
    ],
)
def test_linear_batched_no_bias(student, check, inputs, x_shape, out_features, bias):
    check_linear(student, check, inputs, x_shape, out_features, bias)


# --------------------------------------------------------------------------- MLP


def mlp_case(shape: tuple, hidden: list[int], classes: int):
    in_features = shape[1] * shape[2] * shape[3]
    label = f"MLP({in_features}, {hidden}, {classes}), x {shape}"
    return pytest.param(shape, hidden, classes, id=label)


def check_mlp(student, check, inputs, reference, shape, hidden, classes) -> None:
    """The student's MLP holding a seeded reference state dict (loaded strictly) against
    the float64 ``nn.Sequential`` with the same values."""
    in_features = shape[1] * shape[2] * shape[3]
    template = ref.mlp_layers(in_features, hidden, classes)
    state = {
        name: inputs.parameter(name, value.shape).float()
        for name, value in template.state_dict().items()
    }
    x = inputs.randn(*shape).float()

    def expected():
        layers = template.double()
        layers.load_state_dict({name: value.double() for name, value in state.items()})
        with torch.no_grad():
            return layers(ref.flatten(x.double()))

    logits = reference(expected)
    net = student.MLP(in_features, hidden, classes)
    net.load_state_dict({f"layers.{name}": value for name, value in state.items()})
    net.to(student.device)
    check.close(net(x), logits, "logits with the reference state dict loaded strictly")


MLP_ARGS = "shape, hidden, classes"


@pytest.mark.parametrize(
    MLP_ARGS,
    [
        mlp_case((4, 3, 8, 8), [16], 10),
        mlp_case((2, 1, 5, 7), [9], 4),
        mlp_case((3, 2, 4, 4), [32], 3),
    ],
)
def test_mlp_one_hidden(student, check, inputs, reference, shape, hidden, classes):
    check_mlp(student, check, inputs, reference, shape, hidden, classes)


@pytest.mark.parametrize(
    MLP_ARGS,
    [
        mlp_case((4, 3, 8, 8), [24, 12], 10),
        mlp_case((2, 2, 5, 6), [16, 8, 8], 5),
        mlp_case((3, 3, 4, 4), [], 7),
    ],
)
def test_mlp_depth(student, check, inputs, reference, shape, hidden, classes):
    check_mlp(student, check, inputs, reference, shape, hidden, classes)


# --------------------------------------------------------------------------- parameter count

COUNT_CASES = [
    (3, 32, 32, [512, 256], 10),
    (3, 32, 32, [], 10),
    (1, 28, 28, [100], 10),
    (3, 64, 64, [1024], 10),
    (3, 224, 224, [4096, 4096], 1000),
    (2, 5, 7, [3, 4, 5], 6),
    (1, 1, 1, [1], 1),
    (4, 13, 9, [64], 2),
]


@pytest.mark.parametrize(
    "channels, height, width, hidden, classes",
    COUNT_CASES,
    ids=[f"{c}x{h}x{w}, hidden {hid}, {k} classes" for c, h, w, hid, k in COUNT_CASES],
)
def test_parameter_count_formula(student, check, channels, height, width, hidden, classes):
    expected = ref.mlp_parameter_count(channels, height, width, hidden, classes)
    check.equal(student.mlp_parameter_count(channels, height, width, hidden, classes), expected)


# --------------------------------------------------------------------------- shift sensitivity

# (N, 3, 8, 8) -> 5 classes: flatten and dense layers only, no mode-dependent layers.
MLP_SMALL = [["flatten"], ["linear", 3 * 8 * 8, 32], ["relu"], ["linear", 32, 5]]
MLP_DEEP = [["flatten"], ["linear", 192, 24], ["tanh"], ["linear", 24, 16], ["relu"]]
MLP_DEEP += [["linear", 16, 4]]
# (N, 3, 8, 8) -> 4 classes: a convolution and global average pooling change less.
CNN = [["conv2d", 3, 8, 3, 1, 1], ["relu"], ["adaptiveavgpool2d", 1], ["flatten"]]
CNN += [["linear", 8, 4]]
NETWORKS = {"MLP 192-32-5": MLP_SMALL, "MLP 192-24-16-4": MLP_DEEP, "CNN with global pooling": CNN}
IMAGES = (48, 3, 8, 8)


def shift_case(name: str, k: int):
    return pytest.param(name, k, id=f"{name}, images {IMAGES}, k={k}")


def check_shift(student, check, inputs, reference, name, k) -> None:
    spec = inputs.model_spec(NETWORKS[name])
    images = inputs.randn(*IMAGES)
    expected = reference(lambda: ref.shift_sensitivity(trusted_model(spec), images, k))
    net = student.lib("cnnkit").build_model(spec)
    net.to(student.device)
    got = student.shift_sensitivity(net, images, k)
    if type(got) is torch.Tensor and got.numel() == 1:  # a 0-d tensor is fine too
        got = float(got.double().cpu())
    check.close(got, expected, "fraction of changed predictions")


@pytest.mark.parametrize(
    "name, k",
    [
        shift_case("MLP 192-32-5", 1),
        shift_case("MLP 192-32-5", -3),
        shift_case("MLP 192-24-16-4", 2),
        shift_case("MLP 192-24-16-4", -1),
        shift_case("CNN with global pooling", 1),
        shift_case("CNN with global pooling", 4),
    ],
)
def test_shift_values(student, check, inputs, reference, name, k):
    check_shift(student, check, inputs, reference, name, k)


@pytest.mark.parametrize(
    "name, k",
    [
        shift_case("MLP 192-32-5", 0),
        shift_case("MLP 192-32-5", 8),
        shift_case("MLP 192-32-5", 10),
        shift_case("MLP 192-24-16-4", -11),
    ],
)
def test_shift_wraps_around(student, check, inputs, reference, name, k):
    check_shift(student, check, inputs, reference, name, k)
