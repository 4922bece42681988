"""Hidden tests for m06_05_unet: the U-Net blocks and the masked loss against solutions/unet.py.

The student's modules are built in the sandbox and receive seeded float32
weights in registration order with ``cnnkit.load_ordered`` (parameters, then
floating buffers), the convention the notebook states; the float64 reference
module gets the same values and runs once per case (``reference`` fixture).
Every check compares outputs with the reference: a structure or a parameter
count is checked beside the values it produces, never on its own, so a module
with the right layers and a lazy ``forward`` earns nothing.
"""

from __future__ import annotations

import pytest
import torch

from autograder.fixtures import loaded, ordered_tensors
from solutions import unet as ref


def build(student, cls: str, init_args: tuple, state: list[torch.Tensor], train: bool = False):
    """The student's ``cls(*init_args)`` holding ``state`` in registration order, in the
    given mode, on the grading device (a handle)."""
    net = getattr(student, cls)(*init_args)
    student.lib("cnnkit").load_ordered(net, state)
    net.to(student.device)
    net.train(train)
    return net


def forward(model: torch.nn.Module, state: list, xs: list, train: bool = False):
    """``model`` in float64 holding ``state``, in the given mode, on float64 copies of ``xs``."""
    with torch.no_grad():
        return loaded(model, state, train)(*(x.double() for x in xs))


def check_module(
    student, check, inputs, reference, cls: str, model, init_args: tuple, shapes: list, train=False
) -> None:
    """The student's ``cls(*init_args)`` and the reference ``model`` with the same seeded
    weights, on seeded inputs."""
    state = inputs.module_state(model)
    xs = [inputs.randn(*shape).float() for shape in shapes]
    expected = reference(lambda: forward(model, state, xs, train))
    net = build(student, cls, init_args, state, train)
    check.close(net(*xs), expected)


def parameter_count(student, net) -> int:
    """``sum(p.numel() for p in net.parameters())``, counted in the sandbox: the tensors
    of UNet(3, 21, 64, 4) are too large to send back."""
    python = student.lib("builtins")
    return python.sum(python.map(student.lib("torch").get("numel"), net.parameters()))


# --------------------------------------------------------------------------- DoubleConv


def relu_free(model: torch.nn.Module, state: list, x: torch.Tensor) -> tuple[list, torch.Tensor]:
    """``state`` with BatchNorm shifts that keep both BatchNorm outputs >= 0.5 on ``x``, so
    both ReLUs pass everything: the output then depends on the layers and their order
    only, and a missing ReLU costs the value checks, not the structure. Returns the
    new state (float32) and the reference output."""
    model = loaded(model, state)
    x = x.double()
    with torch.no_grad():
        first = model.bn1(model.conv1(x))
        model.bn1.bias += 0.5 - first.amin(dim=(0, 2, 3))
        second = model.bn2(model.conv2(model.bn1(model.conv1(x))))
        model.bn2.bias += 0.5 - second.amin(dim=(0, 2, 3))
    state = [tensor.float() for tensor in ordered_tensors(model)]
    return state, forward(model, state, [x])


STRUCTURE_CASES = [(3, 8, (2, 3, 9, 11)), (5, 4, (1, 5, 7, 6)), (1, 2, (3, 1, 5, 8))]


@pytest.mark.parametrize(
    "c_in, c_out, shape",
    STRUCTURE_CASES,
    ids=[
        f"DoubleConv({a}, {b}): layers in registration order, x {s}" for a, b, s in STRUCTURE_CASES
    ],
)
def test_double_conv_structure(student, check, inputs, reference, c_in, c_out, shape):
    model = ref.DoubleConv(c_in, c_out)
    seeded, x = inputs.module_state(model), inputs.randn(*shape).float()
    state, expected = reference(lambda: relu_free(model, seeded, x))
    net = build(student, "DoubleConv", (c_in, c_out), state)
    check.close(net(x), expected, "output with weights loaded in registration order (eval mode)")
    shapes = [list(t.shape) for t in student.lib("cnnkit").ordered_tensors(net)]
    check.equal(shapes, [list(t.shape) for t in state], "parameter and buffer shapes")


DOUBLE_CONV_EVAL = [(3, 8, (2, 3, 13, 18)), (5, 4, (1, 5, 9, 9)), (2, 6, (3, 2, 7, 12))]


@pytest.mark.parametrize(
    "c_in, c_out, shape",
    DOUBLE_CONV_EVAL,
    ids=[f"DoubleConv({a}, {b}), eval mode, x {s}" for a, b, s in DOUBLE_CONV_EVAL],
)
def test_double_conv_eval(student, check, inputs, reference, c_in, c_out, shape):
    model = ref.DoubleConv(c_in, c_out)
    check_module(student, check, inputs, reference, "DoubleConv", model, (c_in, c_out), [shape])


DOUBLE_CONV_TRAIN = [(3, 8, (2, 3, 13, 18)), (4, 5, (4, 4, 6, 7))]


@pytest.mark.parametrize(
    "c_in, c_out, shape",
    DOUBLE_CONV_TRAIN,
    ids=[
        f"DoubleConv({a}, {b}), train mode (batch statistics), x {s}"
        for a, b, s in DOUBLE_CONV_TRAIN
    ],
)
def test_double_conv_train(student, check, inputs, reference, c_in, c_out, shape):
    model = ref.DoubleConv(c_in, c_out)
    check_module(
        student, check, inputs, reference, "DoubleConv", model, (c_in, c_out), [shape], train=True
    )


# --------------------------------------------------------------------------- encoder and decoder

ENCODER_CASES = [(3, 8, (2, 3, 16, 20)), (4, 6, (1, 4, 13, 18)), (2, 3, (2, 2, 9, 7))]


@pytest.mark.parametrize(
    "c_in, c_out, shape",
    ENCODER_CASES,
    ids=[f"EncoderBlock({a}, {b}), x {s}: (skip, pooled)" for a, b, s in ENCODER_CASES],
)
def test_encoder_values(student, check, inputs, reference, c_in, c_out, shape):
    model = ref.EncoderBlock(c_in, c_out)
    check_module(student, check, inputs, reference, "EncoderBlock", model, (c_in, c_out), [shape])


def decoder_case(c_in: int, c_out: int, small: tuple, large: tuple):
    label = f"DecoderBlock({c_in}, {c_out}), x {small[0]}x{small[1]}, skip {large[0]}x{large[1]}"
    return pytest.param(c_in, c_out, small, large, id=label)


def check_decoder(student, check, inputs, reference, c_in, c_out, small, large) -> None:
    shapes = [(2, c_in, *small), (2, c_out, *large)]
    model = ref.DecoderBlock(c_in, c_out)
    check_module(student, check, inputs, reference, "DecoderBlock", model, (c_in, c_out), shapes)


DECODER_ARGS = "c_in, c_out, small, large"


@pytest.mark.parametrize(
    DECODER_ARGS,
    [
        decoder_case(16, 8, (6, 9), (12, 18)),
        decoder_case(8, 4, (5, 5), (10, 10)),
        decoder_case(6, 3, (3, 7), (6, 14)),
    ],
)
def test_decoder_even(student, check, inputs, reference, c_in, c_out, small, large):
    check_decoder(student, check, inputs, reference, c_in, c_out, small, large)


@pytest.mark.parametrize(
    DECODER_ARGS,
    [
        decoder_case(16, 8, (6, 9), (13, 18)),
        decoder_case(8, 4, (5, 5), (10, 11)),
        decoder_case(6, 3, (3, 7), (7, 15)),
        decoder_case(4, 2, (4, 2), (9, 5)),
    ],
)
def test_decoder_odd_sizes(student, check, inputs, reference, c_in, c_out, small, large):
    check_decoder(student, check, inputs, reference, c_in, c_out, small, large)


# --------------------------------------------------------------------------- the whole model


def unet_case(config: tuple, shape: tuple | None, what: str = ""):
    label = f"UNet{config}" + (f", x {shape}" if shape else "") + what
    return pytest.param(config, shape, id=label)


@pytest.mark.parametrize(
    "config, shape",
    [
        unet_case((3, 21, 4, 4), (1, 3, 64, 64)),
        unet_case((3, 21, 4, 4), (1, 3, 37, 50)),
        unet_case((1, 2, 4, 3), (2, 1, 45, 33)),
        unet_case((3, 5, 8, 2), (1, 3, 21, 30)),
        unet_case((2, 7, 2, 4), (1, 2, 16, 17)),
    ],
)
def test_unet_output_shape(student, check, inputs, reference, config, shape):
    check_module(student, check, inputs, reference, "UNet", ref.UNet(*config), config, [shape])


@pytest.mark.parametrize(
    "config, shape",
    [
        unet_case((1, 2, 16, 3), (2, 1, 16, 24), ": values and parameter count"),
        unet_case((3, 5, 4, 2), (1, 3, 12, 8), ": values and parameter count"),
        unet_case((4, 3, 6, 1), (2, 4, 10, 6), ": values and parameter count"),
        # 31 million parameters: too many to send seeded weights for; the values of
        # this check come from the configurations above
        unet_case((3, 21, 64, 4), None, ": parameter count"),
    ],
)
def test_unet_parameter_count(student, check, inputs, reference, config, shape):
    if shape is not None:
        model = ref.UNet(*config)
        check_module(student, check, inputs, reference, "UNet", model, config, [shape])
    count = parameter_count(student, student.UNet(*config))
    check.equal(count, ref.unet_parameter_count(*config), "parameter count")


@pytest.mark.parametrize(
    "config, shape",
    [
        unet_case((3, 5, 4, 2), (2, 3, 19, 22), " with seeded weights"),
        unet_case((2, 3, 4, 3), (1, 2, 27, 35), " with seeded weights"),
    ],
)
def test_unet_values(student, check, inputs, reference, config, shape):
    check_module(student, check, inputs, reference, "UNet", ref.UNet(*config), config, [shape])


# --------------------------------------------------------------------------- masked cross-entropy


def masked_batch(inputs, shape: tuple, ignore_index: int = 255, void: float = 0.2):
    """float32 logits, int64 targets with about ``void`` of the pixels set to ``ignore_index``."""
    n, k, h, w = shape
    logits = (2 * inputs.randn(*shape)).float()
    target = inputs.randint(0, k, n, h, w)
    target[inputs.rand(n, h, w) < void] = ignore_index
    return logits, target


def check_loss(student, check, reference, logits, target, what: str = "output", **options) -> None:
    expected = reference(lambda: ref.masked_cross_entropy(logits.double(), target, **options))
    check.close(student.masked_cross_entropy(logits, target, **options), expected, what)


@pytest.mark.parametrize(
    "shape, void",
    [
        pytest.param((2, 5, 7, 9), 0.2, id="logits (2, 5, 7, 9), about 20% void"),
        pytest.param((1, 21, 13, 17), 0.2, id="logits (1, 21, 13, 17), about 20% void"),
        pytest.param((3, 3, 4, 4), 0.2, id="logits (3, 3, 4, 4), about 20% void"),
        pytest.param((2, 4, 6, 6), 0.0, id="no void pixels"),
        pytest.param((2, 4, 6, 6), 1.0, id="a single counted pixel"),
    ],
)
def test_loss_values(student, check, inputs, reference, shape, void):
    logits, target = masked_batch(inputs, shape, void=void)
    if void == 1.0:
        target[1, 2, 3] = 3
    check_loss(student, check, reference, logits, target)


@pytest.mark.parametrize(
    "shape",
    [(2, 5, 7, 9), (1, 3, 5, 6)],
    ids=lambda shape: f"gradient w.r.t. the logits {shape}, 30% void",
)
def test_loss_gradient(student, check, inputs, reference, shape):
    logits, target = masked_batch(inputs, shape, void=0.3)

    def expected():
        leaf = logits.double().requires_grad_()
        output = ref.masked_cross_entropy(leaf, target)
        output.backward()
        return output.detach(), leaf.grad

    output, grad = reference(expected)
    got = student.masked_cross_entropy.with_grads(
        logits, target, wrt=(0,), grad_output=torch.tensor(1.0)
    )
    check.close(got["value"], output)
    if not isinstance(got["grads"], list):
        check.fail(f"gradient: {got['grads'] or 'none were computed'}")
    check.close(got["grads"][0], grad, "gradient with respect to the logits")


@pytest.mark.parametrize(
    "shape",
    [(2, 5, 4, 6), (1, 3, 1, 1)],
    ids=lambda shape: f"logits {shape}, every pixel counted, then every pixel void",
)
def test_loss_all_ignored(student, check, inputs, reference, shape):
    logits, target = masked_batch(inputs, shape, void=0.0)
    # the same logits with every pixel counted first: a loss that is always 0 earns nothing
    check_loss(student, check, reference, logits, target, "loss with every pixel counted")
    void = torch.full_like(target, 255)
    check.close(
        student.masked_cross_entropy(logits, void),
        torch.tensor(0.0, dtype=torch.float64),
        "loss with every pixel void",
    )


@pytest.mark.parametrize("ignore_index", [-1, 0, 3], ids=lambda i: f"ignore_index={i}")
def test_loss_ignore_index(student, check, inputs, reference, ignore_index):
    logits, target = masked_batch(inputs, (2, 5, 6, 7), ignore_index=ignore_index)
    check_loss(student, check, reference, logits, target, ignore_index=ignore_index)
