"""Hidden tests for m06_02_convolution: seeded cases against the float64 references.

Inputs are float32 (what students use); references are computed in float64 from
the same float32 values. Every dilation > 1 case lives in ``conv2d_dilation``, so
a submission that ignores dilation loses exactly that check.
"""

from __future__ import annotations

import pytest
import torch

from solutions import convolution as ref


def describe(x_shape: tuple, w_shape: tuple, options: dict) -> str:
    settings = ", ".join(f"{key}={value!r}" for key, value in options.items())
    kernel = f"kernel {w_shape[2]}x{w_shape[3]}"
    return f"x {tuple(x_shape)}, {kernel}" + (f", {settings}" if settings else "")


def conv_case(x_shape: tuple, w_shape: tuple, bias: bool = True, **options):
    return pytest.param(x_shape, w_shape, bias, options, id=describe(x_shape, w_shape, options))


def check_conv(student, check, inputs, reference, x_shape, w_shape, bias, options) -> None:
    x, w = inputs.randn(*x_shape).float(), inputs.randn(*w_shape).float()
    b = inputs.randn(w_shape[0]).float() if bias else None
    expected = reference(
        lambda: ref.conv2d(x.double(), w.double(), None if b is None else b.double(), **options)
    )
    check.close(student.conv2d(x, w, b, **options), expected)


CONV_ARGS = "x_shape, w_shape, bias, options"


# --------------------------------------------------------------------------- output size

SIZE_COMBOS = [
    (32, 3, 1, 1, 1),
    (32, 2, 2, 0, 1),
    (7, 7, 1, 0, 1),
    (5, 3, 2, 0, 2),
    (1, 1, 1, 0, 1),
]
_generator = torch.Generator().manual_seed(602)
while len(SIZE_COMBOS) < 40:
    n, k, s, p, d = (
        int(torch.randint(low, high + 1, (1,), generator=_generator))
        for low, high in ((1, 64), (1, 7), (1, 4), (0, 3), (1, 3))
    )
    if n + 2 * p >= d * (k - 1) + 1:
        SIZE_COMBOS.append((n, k, s, p, d))


@pytest.mark.parametrize(
    "n, k, s, p, d",
    SIZE_COMBOS,
    ids=[f"n={n}, k={k}, s={s}, p={p}, d={d}" for n, k, s, p, d in SIZE_COMBOS],
)
def test_output_size_formula(student, check, n, k, s, p, d):
    check.equal(student.conv_output_size(n, k, s, p, d), ref.conv_output_size(n, k, s, p, d))


# --------------------------------------------------------------------------- conv2d


@pytest.mark.parametrize(
    CONV_ARGS,
    [
        conv_case((1, 1, 5, 5), (1, 1, 3, 3)),
        conv_case((2, 3, 9, 11), (4, 3, 3, 2)),
        conv_case((3, 2, 7, 6), (5, 2, 1, 1)),
        conv_case((2, 4, 8, 8), (3, 4, 5, 5), bias=False),
        conv_case((1, 3, 13, 10), (2, 3, 2, 4)),
    ],
)
def test_conv2d_basic(student, check, inputs, reference, x_shape, w_shape, bias, options):
    check_conv(student, check, inputs, reference, x_shape, w_shape, bias, options)


@pytest.mark.parametrize(
    CONV_ARGS,
    [
        conv_case((2, 3, 9, 8), (4, 3, *kernel), padding=padding)
        for padding in (1, 2, (1, 2), (0, 3), "same", "valid")
        for kernel in ((3, 3), (2, 4))
    ],
)
def test_conv2d_padding(student, check, inputs, reference, x_shape, w_shape, bias, options):
    check_conv(student, check, inputs, reference, x_shape, w_shape, bias, options)


@pytest.mark.parametrize(
    CONV_ARGS,
    [
        conv_case((2, 3, 11, 10), (4, 3, 3, 2), stride=stride, padding=padding)
        for stride in (2, 3, (2, 1), (1, 3))
        for padding in (0, 1)
    ],
)
def test_conv2d_stride(student, check, inputs, reference, x_shape, w_shape, bias, options):
    check_conv(student, check, inputs, reference, x_shape, w_shape, bias, options)


@pytest.mark.parametrize(
    CONV_ARGS,
    [
        conv_case((2, 3, 11, 12), (4, 3, 3, 3), dilation=2),
        conv_case((2, 3, 11, 12), (4, 3, 3, 2), dilation=(2, 3)),
        conv_case((1, 2, 13, 9), (3, 2, 2, 3), dilation=(1, 2), padding=1),
        conv_case((2, 3, 12, 11), (4, 3, 3, 3), dilation=2, stride=2),
        conv_case((2, 3, 10, 10), (4, 3, 2, 2), dilation=3, padding="same"),
        conv_case((2, 3, 10, 9), (4, 3, 3, 2), dilation=2, padding=(2, 1), stride=(2, 1)),
        conv_case((2, 4, 10, 10), (6, 2, 3, 3), dilation=2, groups=2, padding=1),
    ],
)
def test_conv2d_dilation(student, check, inputs, reference, x_shape, w_shape, bias, options):
    check_conv(student, check, inputs, reference, x_shape, w_shape, bias, options)


@pytest.mark.parametrize(
    CONV_ARGS,
    [
        conv_case((2, 6, 8, 9), (4, 3, 3, 3), groups=2),
        conv_case((2, 6, 8, 9), (6, 2, 3, 2), groups=3, padding=1),
        conv_case((2, 4, 9, 9), (4, 1, 3, 3), groups=4, padding=1),  # depthwise
        conv_case((1, 3, 9, 7), (6, 1, 3, 3), groups=3, stride=2),  # channel multiplier 2
    ],
)
def test_conv2d_groups(student, check, inputs, reference, x_shape, w_shape, bias, options):
    check_conv(student, check, inputs, reference, x_shape, w_shape, bias, options)


@pytest.mark.parametrize(
    CONV_ARGS,
    [
        conv_case((2, 3, 8, 9), (4, 3, 3, 3), padding=1),
        conv_case((2, 3, 9, 9), (4, 3, 3, 2), stride=2, padding=(1, 0)),
        conv_case((1, 4, 7, 8), (6, 2, 2, 3), groups=2),
        conv_case((2, 2, 6, 7), (3, 2, 4, 4), padding="same"),
    ],
)
def test_conv2d_gradients(student, check, inputs, reference, x_shape, w_shape, bias, options):
    x, w, b = (inputs.randn(*shape).float() for shape in (x_shape, w_shape, (w_shape[0],)))

    def expected():
        leaves = [t.double().requires_grad_() for t in (x, w, b)]
        output = ref.conv2d(*leaves, **options)
        grad_output = inputs.randn(*output.shape).float()
        output.backward(grad_output.double())
        return output.detach(), grad_output, [leaf.grad for leaf in leaves]

    output, grad_output, grads = reference(expected)
    got = student.conv2d.with_grads(x, w, b, wrt=(0, 1, 2), grad_output=grad_output, **options)
    check.close(got["value"], output)
    if not isinstance(got["grads"], list):
        check.fail(f"gradient: {got['grads'] or 'none were computed'}")
    for name, grad, expected_grad in zip(("input", "weight", "bias"), got["grads"], grads):
        check.close(grad, expected_grad, f"gradient with respect to the {name}")


# --------------------------------------------------------------------------- pooling

POOL_SETTINGS = [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2},
    {"kernel_size": (2, 3), "stride": 1, "padding": 1},
    {"kernel_size": 3, "padding": 1},
    {"kernel_size": (3, 2), "stride": (2, 1)},
]
POOL_CASES = [
    pytest.param(
        shape, options, id=f"x {shape}, " + ", ".join(f"{k}={v!r}" for k, v in options.items())
    )
    for shape in ((2, 3, 9, 10), (1, 2, 7, 7))
    for options in POOL_SETTINGS
]


@pytest.mark.parametrize("shape, options", POOL_CASES)
def test_pool_max_values(student, check, inputs, shape, options):
    x = inputs.randn(*shape).float()
    check.close(student.max_pool2d(x, **options), ref.max_pool2d(x.double(), **options))


@pytest.mark.parametrize("shape, options", POOL_CASES)
def test_pool_avg_values(student, check, inputs, shape, options):
    x = inputs.randn(*shape).float()
    check.close(student.avg_pool2d(x, **options), ref.avg_pool2d(x.double(), **options))


@pytest.mark.parametrize(
    "shape", [(2, 3, 5, 7), (1, 1, 1, 1), (4, 8, 3, 2)], ids=lambda s: f"x {s}"
)
def test_pool_global_avg(student, check, inputs, shape):
    x = inputs.randn(*shape).float()
    check.close(student.global_avg_pool2d(x), ref.global_avg_pool2d(x.double()))


# --------------------------------------------------------------------------- NumPy


def numpy_case(x_shape, w_shape, bias, stride, padding):
    label = f"x {x_shape}, kernel {w_shape[-1]}x{w_shape[-1]}, stride={stride}, padding={padding}"
    return pytest.param(x_shape, w_shape, bias, stride, padding, id=label)


def check_numpy(student, check, inputs, reference, x_shape, w_shape, bias, stride, padding):
    x, w = inputs.randn(*x_shape), inputs.randn(*w_shape)
    b = inputs.randn(w_shape[0]) if bias else None
    expected = reference(lambda: ref.conv2d(x, w, b, stride=stride, padding=padding).numpy())
    got = student.conv2d_numpy(
        x.numpy(), w.numpy(), None if b is None else b.numpy(), stride=stride, padding=padding
    )
    check.close(got, expected)


NUMPY_ARGS = "x_shape, w_shape, bias, stride, padding"


@pytest.mark.parametrize(
    NUMPY_ARGS,
    [
        numpy_case((2, 3, 8, 9), (4, 3, 3, 3), True, 1, 0),
        numpy_case((1, 1, 5, 5), (2, 1, 2, 2), False, 1, 0),
    ],
)
def test_numpy_conv_basic(
    student, check, inputs, reference, x_shape, w_shape, bias, stride, padding
):
    check_numpy(student, check, inputs, reference, x_shape, w_shape, bias, stride, padding)


@pytest.mark.parametrize(
    NUMPY_ARGS,
    [
        numpy_case((2, 3, 9, 8), (4, 3, 3, 3), True, s, p)
        for s, p in ((2, 0), (1, 1), (2, 1), (3, 2))
    ],
)
def test_numpy_conv_stride_padding(
    student, check, inputs, reference, x_shape, w_shape, bias, stride, padding
):
    check_numpy(student, check, inputs, reference, x_shape, w_shape, bias, stride, padding)
