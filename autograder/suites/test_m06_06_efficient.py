"""Hidden tests for m06_06_efficient: torchvision's blocks through their state dicts, and counters.

- ``depthwise_separable_conv`` against ``F.conv2d(groups=C)`` and a 1x1 ``F.conv2d`` in
  float64, values and gradients; the convolution operators are forbidden (rubric).
- ``MobileNetV1Block``, ``InvertedResidual`` and ``SqueezeExcitation`` load seeded state
  dicts of torchvision's ``Conv2dNormActivation`` pair, ``InvertedResidual`` and
  ``ops.SqueezeExcitation`` strictly; eval-mode outputs are compared in float64.
- ``CBAM`` against the functional reference in ``solutions/efficient.py``.
- ``make_divisible`` and ``compound_scaling`` against torchvision's ``_make_divisible`` and
  ``_MBConvConfig.adjust_channels``, and ``alpha ** phi`` etc.
- ``count_params_and_macs`` on models built in the sandbox from seeded specs
  (``cnnkit.build_model``): ``sum(p.numel())`` and ``FlopCounterMode`` FLOPs / 2.
"""

from __future__ import annotations

import pytest

from autograder.fixtures import compare_module, trusted_model
from solutions import efficient as ref

# --------------------------------------------------------------------------- depthwise separable


def dsc_case(x_shape, c_out, k, stride=1, padding=0, bias=True):
    label = f"x {x_shape}, {k}x{k} depthwise, {c_out} outputs, stride {stride}, padding {padding}"
    return pytest.param(
        x_shape, c_out, k, stride, padding, bias, id=label + ("" if bias else ", no biases")
    )


DSC_ARGS = "x_shape, c_out, k, stride, padding, bias"


def dsc_tensors(inputs, x_shape, c_out, k, bias):
    channels = x_shape[1]
    x = inputs.randn(*x_shape).float()
    dw = inputs.randn(channels, 1, k, k).float()
    pw = inputs.randn(c_out, channels, 1, 1).float()
    dw_b = inputs.randn(channels).float() if bias else None
    pw_b = inputs.randn(c_out).float() if bias else None
    return x, dw, pw, dw_b, pw_b


def check_dsc(student, check, inputs, reference, x_shape, c_out, k, stride, padding, bias):
    x, dw, pw, dw_b, pw_b = dsc_tensors(inputs, x_shape, c_out, k, bias)

    def expected():
        wide = [None if t is None else t.double() for t in (x, dw, pw, dw_b, pw_b)]
        return ref.depthwise_separable_conv(*wide, stride=stride, padding=padding)

    got = student.depthwise_separable_conv(x, dw, pw, dw_b, pw_b, stride=stride, padding=padding)
    check.close(got, reference(expected))


@pytest.mark.parametrize(
    DSC_ARGS,
    [
        dsc_case((2, 3, 8, 8), 5, 3),
        dsc_case((1, 4, 7, 9), 6, 3, padding=1),
        dsc_case((2, 2, 9, 6), 3, 5, padding=2, bias=False),
        dsc_case((3, 5, 6, 6), 2, 1),
    ],
)
def test_dsc_values(student, check, inputs, reference, x_shape, c_out, k, stride, padding, bias):
    check_dsc(student, check, inputs, reference, x_shape, c_out, k, stride, padding, bias)


@pytest.mark.parametrize(
    DSC_ARGS,
    [
        dsc_case((2, 3, 8, 8), 4, 3, stride=2, padding=1),
        dsc_case((1, 4, 9, 7), 4, 3, stride=2),
        dsc_case((2, 2, 10, 11), 3, 5, stride=3, padding=2),
    ],
)
def test_dsc_stride_padding(
    student, check, inputs, reference, x_shape, c_out, k, stride, padding, bias
):
    check_dsc(student, check, inputs, reference, x_shape, c_out, k, stride, padding, bias)


@pytest.mark.parametrize(
    DSC_ARGS, [dsc_case((2, 3, 7, 8), 4, 3, padding=1), dsc_case((1, 2, 9, 9), 3, 3, stride=2)]
)
def test_dsc_gradients(student, check, inputs, reference, x_shape, c_out, k, stride, padding, bias):
    tensors = dsc_tensors(inputs, x_shape, c_out, k, bias)
    out_shape = reference(
        lambda: ref.depthwise_separable_conv(*tensors, stride=stride, padding=padding).shape
    )
    grad_output = inputs.randn(*out_shape).float()

    def expected():
        leaves = [t.double().requires_grad_() for t in tensors]
        output = ref.depthwise_separable_conv(*leaves, stride=stride, padding=padding)
        output.backward(grad_output.double())
        return output.detach(), [leaf.grad for leaf in leaves]

    output, grads = reference(expected)
    got = student.depthwise_separable_conv.with_grads(
        *tensors, wrt=(0, 1, 2, 3, 4), grad_output=grad_output, stride=stride, padding=padding
    )
    check.close(got["value"], output)
    if not isinstance(got["grads"], list):
        check.fail(f"gradient: {got['grads'] or 'none were computed'}")
    names = ("input", "depthwise weight", "pointwise weight", "depthwise bias", "pointwise bias")
    for name, grad, expected_grad in zip(names, got["grads"], grads):
        check.close(grad, expected_grad, f"gradient with respect to the {name}")


# --------------------------------------------------------------------------- blocks


def block_case(label: str, args: tuple, shape: tuple):
    return pytest.param(args, shape, id=f"{label}: {args}, x {shape}")


@pytest.mark.parametrize(
    "args, shape",
    [
        block_case("stride 1", (8, 16, 1), (2, 8, 6, 6)),
        block_case("stride 2, odd size", (6, 12, 2), (2, 6, 7, 9)),
        block_case("narrower", (12, 4, 1), (1, 12, 5, 5)),
    ],
)
def test_v1_block(student, check, inputs, reference, args, shape):
    compare_module(
        student, check, inputs, reference, ref.MobileNetV1Block, "MobileNetV1Block", args, shape
    )


@pytest.mark.parametrize(
    "args, shape",
    [
        block_case("expand 6, stride 2", (8, 16, 2, 6), (2, 8, 8, 8)),
        block_case("expand 6, wider", (8, 12, 1, 6), (2, 8, 5, 7)),
        block_case("expand 4, stride 2, odd size", (6, 6, 2, 4), (1, 6, 7, 7)),
        block_case("expand 1, stride 2", (16, 24, 2, 1), (2, 16, 6, 6)),
    ],
)
def test_ir_expand(student, check, inputs, reference, args, shape):
    compare_module(
        student, check, inputs, reference, ref.inverted_residual, "InvertedResidual", args, shape
    )


@pytest.mark.parametrize(
    "args, shape",
    [
        block_case("expand 6", (8, 8, 1, 6), (2, 8, 6, 6)),
        block_case("expand 1", (12, 12, 1, 1), (2, 12, 5, 7)),
        block_case("expand 3, one pixel", (6, 6, 1, 3), (3, 6, 1, 1)),
    ],
)
def test_ir_residual(student, check, inputs, reference, args, shape):
    compare_module(
        student, check, inputs, reference, ref.inverted_residual, "InvertedResidual", args, shape
    )


@pytest.mark.parametrize(
    "args, shape",
    [
        block_case("16 -> 4", (16, 4), (2, 16, 6, 6)),
        block_case("24 -> 6", (24, 6), (3, 24, 5, 7)),
    ],
)
def test_se_values(student, check, inputs, reference, args, shape):
    compare_module(
        student, check, inputs, reference, ref.squeeze_excitation, "SqueezeExcitation", args, shape
    )


@pytest.mark.parametrize(
    "args, shape",
    [
        block_case("one squeeze channel", (5, 1), (2, 5, 4, 4)),
        block_case("one-pixel images", (8, 2), (4, 8, 1, 1)),
        block_case("a single image", (6, 3), (1, 6, 9, 3)),
    ],
)
def test_se_edge(student, check, inputs, reference, args, shape):
    compare_module(
        student, check, inputs, reference, ref.squeeze_excitation, "SqueezeExcitation", args, shape
    )


@pytest.mark.parametrize(
    "args, shape",
    [
        block_case("32 channels, reduction 16, 7x7", (32, 16, 7), (2, 32, 9, 9)),
        block_case("48 channels, reduction 8, 7x7", (48, 8, 7), (1, 48, 8, 10)),
    ],
)
def test_cbam_values(student, check, inputs, reference, args, shape):
    compare_module(student, check, inputs, reference, ref.CBAM, "CBAM", args, shape)


@pytest.mark.parametrize(
    "args, shape",
    [
        block_case("3x3 spatial kernel", (16, 4, 3), (2, 16, 6, 5)),
        block_case("fewer channels than the reduction", (6, 16, 5), (2, 6, 7, 7)),
        block_case("one-pixel images", (8, 2, 7), (3, 8, 1, 1)),
    ],
)
def test_cbam_kernel_reduction(student, check, inputs, reference, args, shape):
    compare_module(student, check, inputs, reference, ref.CBAM, "CBAM", args, shape)


# --------------------------------------------------------------------------- scaling

DIVISIBLE = [
    (8.0, 8, None),
    (10.0, 8, None),
    (12.0, 8, None),
    (3.0, 8, None),
    (35.2, 8, None),
    (36.0, 8, None),
    (76.0, 8, None),
    (132.0, 8, None),  # rounds down to 128 (>= 0.9 * 132)
    (19.0, 16, None),  # rounds down to 16 < 0.9 * 19: one divisor more
    (37.0, 8, 48),  # min_value wins
    (100.0, 3, None),
    (1.0, 4, 1),
]


@pytest.mark.parametrize(
    "value, divisor, min_value",
    DIVISIBLE,
    ids=[f"make_divisible({v}, {d}, min_value={m})" for v, d, m in DIVISIBLE],
)
def test_make_divisible_values(student, check, value, divisor, min_value):
    expected = ref.make_divisible(value, divisor, min_value)
    check.equal(student.make_divisible(value, divisor, min_value), expected, "channels")


SCALINGS = [
    (0, ref.B0_STAGES, {}),
    (1, ref.B0_STAGES, {}),
    (2, ref.B0_STAGES, {}),
    (3, ref.B0_STAGES, {}),
    (1.5, [(32, 1), (17, 3), (64, 2)], {"alpha": 1.3, "beta": 1.05, "gamma": 1.2}),
    (2, [(24, 2), (40, 4)], {"base_resolution": 192}),
]


@pytest.mark.parametrize(
    "phi, stages, options",
    SCALINGS,
    ids=[f"phi={p}, {len(s)} stages" + (f", {o}" if o else "") for p, s, o in SCALINGS],
)
def test_compound_stages(student, check, phi, stages, options):
    expected = ref.compound_scaling(phi, stages, **options)
    got = student.compound_scaling(phi, list(stages), **options)
    if not isinstance(got, dict) or set(got) != set(expected):
        check.fail(f"compound_scaling should return a dict with the keys {sorted(expected)}")
    check.close(got["depth"], expected["depth"], "depth multiplier")
    check.close(got["width"], expected["width"], "width multiplier")
    check.equal(got["resolution"], expected["resolution"], "resolution")
    check.equal(
        [list(stage) for stage in got["stages"]],
        [list(stage) for stage in expected["stages"]],
        "scaled stages (channels, layers)",
    )


# --------------------------------------------------------------------------- counting

COUNT_MODELS = {
    "plain convolutions": (
        [["conv2d", 3, 8, 3, 1, 1], ["relu"], ["conv2d", 8, 16, 3, 2, 1], ["relu"]],
        (2, 3, 16, 16),
    ),
    "depthwise separable": (
        [["conv2d", 8, 8, 3, 1, 1, 1, 8], ["batchnorm2d", 8], ["relu"], ["conv2d", 8, 12, 1]],
        (1, 8, 10, 12),
    ),
    "grouped, strided, pooled, linear head": (
        [
            ["conv2d", 4, 8, 3, 2, 0, 1, 2],
            ["batchnorm2d", 8],
            ["relu"],
            ["maxpool2d", 2],
            ["adaptiveavgpool2d", 1],
            ["flatten"],
            ["linear", 8, 5],
        ],
        (3, 4, 17, 15),
    ),
    "MLP": ([["flatten"], ["linear", 48, 20], ["relu"], ["linear", 20, 3]], (4, 3, 4, 4)),
}


def count_case(name: str):
    return pytest.param(name, id=f"{name}, input {COUNT_MODELS[name][1]}")


def counted(student, check, inputs, reference, name):
    layers, shape = COUNT_MODELS[name]
    spec = inputs.model_spec(layers)
    spec["dtype"] = "float32"
    spec["state"] = {
        key: value.float() if value.is_floating_point() else value
        for key, value in spec["state"].items()
    }
    expected = reference(
        lambda: (
            ref.parameter_count(trusted_model(spec)),
            ref.mac_count(trusted_model(spec), shape),
        )
    )
    net = student.lib("cnnkit").build_model(spec)
    result = student.count_params_and_macs(net, shape)
    if not isinstance(result, tuple) or len(result) != 2:
        check.fail("count_params_and_macs should return a tuple (parameters, MACs)")
    return result, expected


@pytest.mark.parametrize("name", [count_case(n) for n in COUNT_MODELS])
def test_count_params(student, check, inputs, reference, name):
    (params, _), (expected, _) = counted(student, check, inputs, reference, name)
    check.equal(params, expected, "parameter count")


@pytest.mark.parametrize("name", [count_case(n) for n in COUNT_MODELS])
def test_count_macs(student, check, inputs, reference, name):
    (_, macs), (_, expected) = counted(student, check, inputs, reference, name)
    check.equal(macs, expected, "multiply-accumulates (FlopCounterMode's FLOPs / 2)")
