"""Hidden suite for m06_05_unet: U-Net blocks against the references in solutions/unet.py.

The student's modules are built in the sandbox and receive seeded float32 weights
in registration order (``load="ordered"``: parameters, then floating buffers), the
convention the notebook states; the reference gets the same values in float64.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from autograder.fixtures import Fixtures
from autograder.judge import compare_structure
from autograder.suite import Case, Suite, call, grad, module, module_case
from solutions import unet as ref

SUITE = Suite("m06_05_unet")


# --------------------------------------------------------------------------- DoubleConv


@SUITE.check("double_conv_structure")
def double_conv_structure(fx: Fixtures) -> Iterator[Case]:
    for c_in, c_out in ((3, 8), (5, 4), (1, 2)):
        reference = ref.DoubleConv(c_in, c_out)
        expected = {
            "parameter_count": sum(p.numel() for p in reference.parameters()),
            "parameter_shapes": [list(p.shape) for p in reference.parameters()],
        }
        label = f"DoubleConv({c_in}, {c_out}): parameter shapes in registration order"
        yield Case(label, module("DoubleConv", c_in, c_out), expected, compare_structure)


@SUITE.check("double_conv_eval")
def double_conv_eval(fx: Fixtures) -> Iterator[Case]:
    for c_in, c_out, shape in ((3, 8, (2, 3, 13, 18)), (5, 4, (1, 5, 9, 9)), (2, 6, (3, 2, 7, 12))):
        label = f"DoubleConv({c_in}, {c_out}), eval mode, x {shape}"
        yield module_case(
            fx, label, "DoubleConv", ref.DoubleConv(c_in, c_out), (c_in, c_out), [shape]
        )


@SUITE.check("double_conv_train")
def double_conv_train(fx: Fixtures) -> Iterator[Case]:
    for c_in, c_out, shape in ((3, 8, (2, 3, 13, 18)), (4, 5, (4, 4, 6, 7))):
        label = f"DoubleConv({c_in}, {c_out}), train mode (batch statistics), x {shape}"
        reference = ref.DoubleConv(c_in, c_out)
        yield module_case(fx, label, "DoubleConv", reference, (c_in, c_out), [shape], train=True)


# --------------------------------------------------------------------------- encoder and decoder


@SUITE.check("encoder_values")
def encoder_values(fx: Fixtures) -> Iterator[Case]:
    for c_in, c_out, shape in (
        (3, 8, (2, 3, 16, 20)),
        (4, 6, (1, 4, 13, 18)),
        (2, 3, (2, 2, 9, 7)),
    ):
        label = f"EncoderBlock({c_in}, {c_out}), x {shape}: (skip, pooled)"
        yield module_case(
            fx, label, "EncoderBlock", ref.EncoderBlock(c_in, c_out), (c_in, c_out), [shape]
        )


def decoder_cases(fx: Fixtures, settings: list[tuple]) -> Iterator[Case]:
    for c_in, c_out, (h, w), (height, width) in settings:
        label = f"DecoderBlock({c_in}, {c_out}), x {h}x{w}, skip {height}x{width}"
        shapes = [(2, c_in, h, w), (2, c_out, height, width)]
        yield module_case(
            fx, label, "DecoderBlock", ref.DecoderBlock(c_in, c_out), (c_in, c_out), shapes
        )


@SUITE.check("decoder_even")
def decoder_even(fx: Fixtures) -> Iterator[Case]:
    yield from decoder_cases(
        fx, [(16, 8, (6, 9), (12, 18)), (8, 4, (5, 5), (10, 10)), (6, 3, (3, 7), (6, 14))]
    )


@SUITE.check("decoder_odd_sizes")
def decoder_odd_sizes(fx: Fixtures) -> Iterator[Case]:
    settings = [
        (16, 8, (6, 9), (13, 18)),
        (8, 4, (5, 5), (10, 11)),
        (6, 3, (3, 7), (7, 15)),
        (4, 2, (4, 2), (9, 5)),
    ]
    yield from decoder_cases(fx, settings)


# --------------------------------------------------------------------------- the whole model


@SUITE.check("unet_output_shape")
def unet_output_shape(fx: Fixtures) -> Iterator[Case]:
    settings = [
        ((3, 21, 4, 4), (1, 3, 64, 64)),
        ((3, 21, 4, 4), (1, 3, 37, 50)),
        ((1, 2, 4, 3), (2, 1, 45, 33)),
    ]
    settings += [((3, 5, 8, 2), (1, 3, 21, 30)), ((2, 7, 2, 4), (1, 2, 16, 17))]
    for config, shape in settings:
        x = fx.randn(*shape).float()
        expected = {"shape": (shape[0], config[1], *shape[2:])}
        yield Case(
            f"UNet{config}, x {shape}",
            module("UNet", *config, inputs=(x,)),
            expected,
            compare_structure,
        )


@SUITE.check("unet_parameter_count")
def unet_parameter_count(fx: Fixtures) -> Iterator[Case]:
    for config in ((3, 21, 64, 4), (1, 2, 16, 3), (3, 5, 4, 2), (4, 3, 6, 1)):
        expected = {"parameter_count": ref.unet_parameter_count(*config)}
        yield Case(f"UNet{config}", module("UNet", *config), expected, compare_structure)


@SUITE.check("unet_values")
def unet_values(fx: Fixtures) -> Iterator[Case]:
    for config, shape in (((3, 5, 4, 2), (2, 3, 19, 22)), ((2, 3, 4, 3), (1, 2, 27, 35))):
        label = f"UNet{config} with seeded weights, x {shape}"
        yield module_case(fx, label, "UNet", ref.UNet(*config), config, [shape])


# --------------------------------------------------------------------------- masked cross-entropy


def masked_batch(fx: Fixtures, shape: tuple, ignore_index: int = 255, void: float = 0.2):
    n, k, h, w = shape
    logits = (2 * fx.randn(*shape)).float()
    target = fx.randint(0, k, n, h, w)
    target[fx.rand(n, h, w) < void] = ignore_index
    return logits, target


@SUITE.check("loss_values")
def loss_values(fx: Fixtures) -> Iterator[Case]:
    for shape in ((2, 5, 7, 9), (1, 21, 13, 17), (3, 3, 4, 4)):
        logits, target = masked_batch(fx, shape)
        expected = ref.masked_cross_entropy(logits.double(), target)
        yield Case(
            f"logits {shape}, about 20% void",
            call("masked_cross_entropy", logits, target),
            expected,
        )
    logits, target = masked_batch(fx, (2, 4, 6, 6), void=0.0)
    yield Case(
        "no void pixels",
        call("masked_cross_entropy", logits, target),
        ref.masked_cross_entropy(logits.double(), target),
    )
    single = torch.full_like(target, 255)
    single[1, 2, 3] = 3
    yield Case(
        "a single counted pixel",
        call("masked_cross_entropy", logits, single),
        ref.masked_cross_entropy(logits.double(), single),
    )


@SUITE.check("loss_gradient")
def loss_gradient(fx: Fixtures) -> Iterator[Case]:
    for shape in ((2, 5, 7, 9), (1, 3, 5, 6)):
        logits, target = masked_batch(fx, shape, void=0.3)
        leaf = logits.double().requires_grad_()
        output = ref.masked_cross_entropy(leaf, target)
        output.backward()
        expected = {"value": output.detach(), "grads": [leaf.grad]}
        probe = grad(
            "masked_cross_entropy",
            logits,
            target,
            requires_grad=(0,),
            grad_output=torch.tensor(1.0),
        )
        yield Case(f"gradient w.r.t. the logits {shape}, 30% void", probe, expected)


@SUITE.check("loss_all_ignored")
def loss_all_ignored(fx: Fixtures) -> Iterator[Case]:
    logits, target = masked_batch(fx, (2, 5, 4, 6))
    for shape in ((2, 5, 4, 6), (1, 3, 1, 1)):
        logits, target = masked_batch(fx, shape)
        probe = call("masked_cross_entropy", logits, torch.full_like(target, 255))
        yield Case(
            f"every pixel void, logits {shape}", probe, torch.tensor(0.0, dtype=torch.float64)
        )


@SUITE.check("loss_ignore_index")
def loss_ignore_index(fx: Fixtures) -> Iterator[Case]:
    for ignore_index in (-1, 0, 3):
        logits, target = masked_batch(fx, (2, 5, 6, 7), ignore_index=ignore_index)
        expected = ref.masked_cross_entropy(logits.double(), target, ignore_index=ignore_index)
        probe = call("masked_cross_entropy", logits, target, ignore_index=ignore_index)
        yield Case(f"ignore_index={ignore_index}", probe, expected)
