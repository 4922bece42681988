"""Hidden tests for m06_09_conv1d_3d: causal convolution, TCN, receptive fields, Conv3d, GRU.

- ``causal_conv1d`` against ``F.conv1d`` padded on both sides and chomped (locuslab's TCN)
  in float64; no leakage: the gradient of one output step with respect to later inputs is
  exactly zero.
- ``TemporalBlock``, ``TCN``, ``VideoClassifier`` and ``GRUBaseline`` load seeded state
  dicts of the references in ``solutions/conv1d_3d.py`` strictly; eval-mode outputs are
  compared in float64.
- Receptive fields against the closed forms (cross-checked by gradient support in
  tests/test_solutions_conv1d_3d.py).
"""

from __future__ import annotations

import pytest
import torch

from autograder.fixtures import compare_module
from solutions import conv1d_3d as ref

# --------------------------------------------------------------------------- causal convolution


def causal_case(x_shape, c_out, k, dilation, bias=True):
    label = f"x {x_shape}, {c_out} outputs, kernel {k}, dilation {dilation}"
    return pytest.param(x_shape, c_out, k, dilation, bias, id=label + ("" if bias else ", no bias"))


CAUSAL_ARGS = "x_shape, c_out, k, dilation, bias"


def causal_tensors(inputs, x_shape, c_out, k, bias):
    x = inputs.randn(*x_shape).float()
    weight = (inputs.randn(c_out, x_shape[1], k) / (x_shape[1] * k) ** 0.5).float()
    b = inputs.randn(c_out).float() if bias else None
    return x, weight, b


@pytest.mark.parametrize(
    CAUSAL_ARGS,
    [
        causal_case((2, 3, 16), 4, 3, 1),
        causal_case((1, 2, 25), 3, 2, 4),
        causal_case((3, 1, 12), 2, 5, 2, bias=False),
        causal_case((2, 4, 30), 5, 3, 8),
        causal_case((2, 3, 9), 3, 1, 1),
        causal_case((1, 2, 6), 2, 4, 3, bias=False),  # the padding is longer than the input
    ],
)
def test_causal_values(student, check, inputs, reference, x_shape, c_out, k, dilation, bias):
    x, weight, b = causal_tensors(inputs, x_shape, c_out, k, bias)

    def expected():
        wide = None if b is None else b.double()
        return ref.causal_conv1d(x.double(), weight.double(), wide, dilation=dilation)

    got = student.causal_conv1d(x, weight, b, dilation=dilation)
    check.close(got, reference(expected))


@pytest.mark.parametrize(
    CAUSAL_ARGS + ", t",
    [
        pytest.param(*causal_case((2, 3, 20), 4, 3, 2).values, 7, id="kernel 3, dilation 2, y_7"),
        pytest.param(*causal_case((1, 2, 16), 3, 2, 4).values, 0, id="kernel 2, dilation 4, y_0"),
        pytest.param(
            *causal_case((2, 2, 18), 2, 4, 1, bias=False).values, 11, id="kernel 4, no bias, y_11"
        ),
    ],
)
def test_causal_no_leak(student, check, inputs, reference, x_shape, c_out, k, dilation, bias, t):
    tensors = causal_tensors(inputs, x_shape, c_out, k, bias)
    tensors = tuple(tensor for tensor in tensors if tensor is not None)
    grad_output = torch.zeros(x_shape[0], c_out, x_shape[2])
    grad_output[:, :, t] = inputs.randn(x_shape[0], c_out).float()

    def expected():
        leaves = [tensor.double().requires_grad_() for tensor in tensors]
        output = ref.causal_conv1d(*leaves[:2], *leaves[2:], dilation=dilation)
        output.backward(grad_output.double())
        return output.detach(), [leaf.grad for leaf in leaves]

    output, grads = reference(expected)
    got = student.causal_conv1d.with_grads(
        *tensors, wrt=tuple(range(len(tensors))), grad_output=grad_output, dilation=dilation
    )
    check.close(got["value"], output)
    if not isinstance(got["grads"], list):
        check.fail(f"gradient: {got['grads'] or 'none were computed'}")
    x_grad = got["grads"][0]
    if not isinstance(x_grad, torch.Tensor) or x_grad.shape != grads[0].shape:
        check.fail("the gradient with respect to the input is missing or has the wrong shape")
    future = x_grad[..., t + 1 :]
    check.that(
        bool((future == 0).all()),
        f"y_{t} depends on later inputs: the gradient with respect to x_{t + 1} onwards is not 0"
        f" (largest {future.abs().max().item():.3g})",
    )
    names = ("input", "weight", "bias")
    for name, grad, expected_grad in zip(names, got["grads"], grads):
        check.close(grad, expected_grad, f"gradient with respect to the {name}")


# --------------------------------------------------------------------------- modules


def module_case(label: str, args: tuple, shape: tuple):
    return pytest.param(args, shape, id=f"{label}: {args}, x {shape}")


@pytest.mark.parametrize(
    "args, shape",
    [
        module_case("kernel 3, dilation 1", (6, 6, 3, 1), (2, 6, 20)),
        module_case("kernel 2, dilation 4", (8, 8, 2, 4), (2, 8, 25)),
        module_case("kernel 3, dilation 2, short input", (4, 4, 3, 2), (3, 4, 3)),
    ],
)
def test_tcn_block_identity(student, check, inputs, reference, args, shape):
    compare_module(
        student, check, inputs, reference, ref.TemporalBlock, "TemporalBlock", args, shape
    )


@pytest.mark.parametrize(
    "args, shape",
    [
        module_case("wider", (4, 8, 3, 2), (2, 4, 18)),
        module_case("narrower", (10, 6, 2, 1), (2, 10, 15)),
    ],
)
def test_tcn_block_downsample(student, check, inputs, reference, args, shape):
    compare_module(
        student, check, inputs, reference, ref.TemporalBlock, "TemporalBlock", args, shape
    )


@pytest.mark.parametrize(
    "args, shape",
    [
        module_case("3 levels, kernel 2", (3, 2, [8, 8, 8], 2), (2, 3, 24)),
        module_case("4 levels, kernel 3, widths change", (5, 4, [6, 8, 8, 4], 3), (2, 5, 40)),
    ],
)
def test_tcn_network(student, check, inputs, reference, args, shape):
    compare_module(student, check, inputs, reference, ref.TCN, "TCN", args, shape)


# --------------------------------------------------------------------------- receptive fields

STACKS = [
    ([], []),
    ([3], [1]),
    ([3, 3, 3], [1, 2, 4]),
    ([2, 5, 3, 7], [3, 1, 8, 2]),
    ([4] * 10, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]),
]


@pytest.mark.parametrize(
    "kernel_sizes, dilations", STACKS, ids=[f"kernels {k}, dilations {d}" for k, d in STACKS]
)
def test_rf_stack(student, check, kernel_sizes, dilations):
    expected = ref.receptive_field(kernel_sizes, dilations)
    check.equal(student.receptive_field(list(kernel_sizes), list(dilations)), expected, "field")


TCN_FIELDS = [(2, 1), (2, 8), (3, 6), (5, 3), (7, 12), (4, 1)]


@pytest.mark.parametrize(
    "kernel_size, levels", TCN_FIELDS, ids=[f"kernel {k}, {n} levels" for k, n in TCN_FIELDS]
)
def test_rf_tcn(student, check, kernel_size, levels):
    expected = ref.tcn_receptive_field(kernel_size, levels)
    check.equal(student.tcn_receptive_field(kernel_size, levels), expected, "receptive field")


LENGTHS = [(2, 15), (2, 16), (3, 200), (3, 253), (5, 2), (4, 1000), (6, 11), (2, 1)]


@pytest.mark.parametrize(
    "kernel_size, length", LENGTHS, ids=[f"kernel {k}, length {n}" for k, n in LENGTHS]
)
def test_rf_levels(student, check, kernel_size, length):
    expected = ref.levels_for(kernel_size, length)
    check.equal(student.levels_for(kernel_size, length), expected, "levels")


# --------------------------------------------------------------------------- video

FRAME_SHAPES = [(2, 4, 6, 5, 3), (1, 3, 8, 8, 1), (3, 1, 7, 9, 3)]


@pytest.mark.parametrize("shape", FRAME_SHAPES, ids=[f"frames {s}" for s in FRAME_SHAPES])
def test_clips_layout(student, check, inputs, shape):
    frames = inputs.randint(0, 256, *shape).to(torch.uint8)
    expected = ref.frames_to_clips(frames).double()
    got = student.frames_to_clips(frames)
    if isinstance(got, torch.Tensor) and got.dtype != torch.float32:
        check.fail(f"frames_to_clips should return float32, not {got.dtype}")
    check.close(got, expected)


@pytest.mark.parametrize(
    "args, shape",
    [
        module_case("one channel, width 8", (1, 4, 8), (2, 1, 6, 12, 12)),
        module_case("three channels, width 4", (3, 5, 4), (2, 3, 4, 10, 8)),
        module_case("width 16", (1, 3, 16), (1, 1, 8, 16, 16)),
    ],
)
def test_c3d_values(student, check, inputs, reference, args, shape):
    compare_module(
        student, check, inputs, reference, ref.VideoClassifier, "VideoClassifier", args, shape
    )


@pytest.mark.parametrize(
    "args, shape",
    [
        module_case("one frame", (1, 4, 6), (2, 1, 1, 8, 8)),
        module_case("three frames, odd size", (3, 2, 4), (2, 3, 3, 9, 7)),
    ],
)
def test_c3d_sizes(student, check, inputs, reference, args, shape):
    compare_module(
        student, check, inputs, reference, ref.VideoClassifier, "VideoClassifier", args, shape
    )


# --------------------------------------------------------------------------- GRU


@pytest.mark.parametrize(
    "args, shape",
    [
        module_case("one layer", (5, 8, 3), (3, 5, 20)),
        module_case("one step", (4, 6, 2), (2, 4, 1)),
        module_case("long", (2, 12, 1), (2, 2, 40)),
    ],
)
def test_gru_values(student, check, inputs, reference, args, shape):
    compare_module(student, check, inputs, reference, ref.GRUBaseline, "GRUBaseline", args, shape)


@pytest.mark.parametrize(
    "args, shape",
    [
        module_case("two layers", (4, 8, 3, 2), (2, 4, 15)),
        module_case("three layers", (3, 6, 2, 3), (3, 3, 10)),
    ],
)
def test_gru_layers(student, check, inputs, reference, args, shape):
    compare_module(student, check, inputs, reference, ref.GRUBaseline, "GRUBaseline", args, shape)
