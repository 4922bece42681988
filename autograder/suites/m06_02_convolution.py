"""Hidden suite for m06_02_convolution: seeded cases against PyTorch's operators.

Inputs are float32 (what students use); references are computed in float64 from
the same float32 values. Every dilation > 1 case lives in ``conv2d_dilation``, so
a submission that ignores dilation loses exactly that check.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from autograder.fixtures import Fixtures
from autograder.suite import Case, Suite, call, grad, ndarray, to_numpy_expected
from solutions import convolution as ref

SUITE = Suite("m06_02_convolution")


def _describe(x: torch.Tensor, w: torch.Tensor, options: dict) -> str:
    settings = ", ".join(f"{key}={value!r}" for key, value in options.items())
    kernel = f"kernel {w.shape[2]}x{w.shape[3]}"
    return f"x {tuple(x.shape)}, {kernel}" + (f", {settings}" if settings else "")


def conv_case(fx: Fixtures, x_shape: tuple, w_shape: tuple, bias: bool = True, **options) -> Case:
    x, w = fx.randn(*x_shape).float(), fx.randn(*w_shape).float()
    b = fx.randn(w_shape[0]).float() if bias else None
    expected = ref.conv2d(x.double(), w.double(), None if b is None else b.double(), **options)
    return Case(_describe(x, w, options), call("conv2d", x, w, b, **options), expected)


@SUITE.check("output_size_formula")
def output_size_formula(fx: Fixtures) -> Iterator[Case]:
    combos = [(32, 3, 1, 1, 1), (32, 2, 2, 0, 1), (7, 7, 1, 0, 1), (5, 3, 2, 0, 2), (1, 1, 1, 0, 1)]
    while len(combos) < 40:
        n, k, s, p, d = (
            fx.integer(1, 64),
            fx.integer(1, 7),
            fx.integer(1, 4),
            fx.integer(0, 3),
            fx.integer(1, 3),
        )
        if n + 2 * p >= d * (k - 1) + 1:
            combos.append((n, k, s, p, d))
    for n, k, s, p, d in combos:
        label = f"n={n}, k={k}, s={s}, p={p}, d={d}"
        yield Case(
            label, call("conv_output_size", n, k, s, p, d), ref.conv_output_size(n, k, s, p, d)
        )


@SUITE.check("conv2d_basic")
def conv2d_basic(fx: Fixtures) -> Iterator[Case]:
    yield conv_case(fx, (1, 1, 5, 5), (1, 1, 3, 3))
    yield conv_case(fx, (2, 3, 9, 11), (4, 3, 3, 2))
    yield conv_case(fx, (3, 2, 7, 6), (5, 2, 1, 1))
    yield conv_case(fx, (2, 4, 8, 8), (3, 4, 5, 5), bias=False)
    yield conv_case(fx, (1, 3, 13, 10), (2, 3, 2, 4))


@SUITE.check("conv2d_padding")
def conv2d_padding(fx: Fixtures) -> Iterator[Case]:
    for padding in (1, 2, (1, 2), (0, 3), "same", "valid"):
        for kernel in ((3, 3), (2, 4)):
            yield conv_case(fx, (2, 3, 9, 8), (4, 3, *kernel), padding=padding)


@SUITE.check("conv2d_stride")
def conv2d_stride(fx: Fixtures) -> Iterator[Case]:
    for stride in (2, 3, (2, 1), (1, 3)):
        for padding in (0, 1):
            yield conv_case(fx, (2, 3, 11, 10), (4, 3, 3, 2), stride=stride, padding=padding)


@SUITE.check("conv2d_dilation")
def conv2d_dilation(fx: Fixtures) -> Iterator[Case]:
    yield conv_case(fx, (2, 3, 11, 12), (4, 3, 3, 3), dilation=2)
    yield conv_case(fx, (2, 3, 11, 12), (4, 3, 3, 2), dilation=(2, 3))
    yield conv_case(fx, (1, 2, 13, 9), (3, 2, 2, 3), dilation=(1, 2), padding=1)
    yield conv_case(fx, (2, 3, 12, 11), (4, 3, 3, 3), dilation=2, stride=2)
    yield conv_case(fx, (2, 3, 10, 10), (4, 3, 2, 2), dilation=3, padding="same")
    yield conv_case(fx, (2, 3, 10, 9), (4, 3, 3, 2), dilation=2, padding=(2, 1), stride=(2, 1))
    yield conv_case(fx, (2, 4, 10, 10), (6, 2, 3, 3), dilation=2, groups=2, padding=1)


@SUITE.check("conv2d_groups")
def conv2d_groups(fx: Fixtures) -> Iterator[Case]:
    yield conv_case(fx, (2, 6, 8, 9), (4, 3, 3, 3), groups=2)
    yield conv_case(fx, (2, 6, 8, 9), (6, 2, 3, 2), groups=3, padding=1)
    yield conv_case(fx, (2, 4, 9, 9), (4, 1, 3, 3), groups=4, padding=1)  # depthwise
    yield conv_case(fx, (1, 3, 9, 7), (6, 1, 3, 3), groups=3, stride=2)  # channel multiplier 2


@SUITE.check("conv2d_gradients")
def conv2d_gradients(fx: Fixtures) -> Iterator[Case]:
    settings = [
        ((2, 3, 8, 9), (4, 3, 3, 3), {"padding": 1}),
        ((2, 3, 9, 9), (4, 3, 3, 2), {"stride": 2, "padding": (1, 0)}),
        ((1, 4, 7, 8), (6, 2, 2, 3), {"groups": 2}),
        ((2, 2, 6, 7), (3, 2, 4, 4), {"padding": "same"}),
    ]
    for x_shape, w_shape, options in settings:
        x, w, b = (
            fx.randn(*x_shape).float(),
            fx.randn(*w_shape).float(),
            fx.randn(w_shape[0]).float(),
        )
        leaves = [t.double().requires_grad_() for t in (x, w, b)]
        output = ref.conv2d(*leaves, **options)
        grad_output = fx.randn(*output.shape).float()
        output.backward(grad_output.double())
        expected = {"value": output.detach(), "grads": [leaf.grad for leaf in leaves]}
        label = "gradients, " + _describe(x, w, options)
        probe = grad("conv2d", x, w, b, requires_grad=(0, 1, 2), grad_output=grad_output, **options)
        yield Case(label, probe, expected)


POOL_SETTINGS = [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2},
    {"kernel_size": (2, 3), "stride": 1, "padding": 1},
    {"kernel_size": 3, "padding": 1},
    {"kernel_size": (3, 2), "stride": (2, 1)},
]


def pool_cases(fx: Fixtures, function: str, reference) -> Iterator[Case]:
    for shape in ((2, 3, 9, 10), (1, 2, 7, 7)):
        for options in POOL_SETTINGS:
            x = fx.randn(*shape).float()
            label = f"x {tuple(x.shape)}, " + ", ".join(f"{k}={v!r}" for k, v in options.items())
            yield Case(label, call(function, x, **options), reference(x.double(), **options))


@SUITE.check("pool_max_values")
def pool_max_values(fx: Fixtures) -> Iterator[Case]:
    yield from pool_cases(fx, "max_pool2d", ref.max_pool2d)


@SUITE.check("pool_avg_values")
def pool_avg_values(fx: Fixtures) -> Iterator[Case]:
    yield from pool_cases(fx, "avg_pool2d", ref.avg_pool2d)


@SUITE.check("pool_global_avg")
def pool_global_avg(fx: Fixtures) -> Iterator[Case]:
    for shape in ((2, 3, 5, 7), (1, 1, 1, 1), (4, 8, 3, 2)):
        x = fx.randn(*shape).float()
        yield Case(f"x {shape}", call("global_avg_pool2d", x), ref.global_avg_pool2d(x.double()))


def numpy_case(
    fx: Fixtures, x_shape: tuple, w_shape: tuple, bias: bool, stride: int, padding: int
) -> Case:
    x, w = fx.randn(*x_shape), fx.randn(*w_shape)
    b = fx.randn(w_shape[0]) if bias else None
    expected = to_numpy_expected(ref.conv2d(x, w, b, stride=stride, padding=padding))
    probe = call(
        "conv2d_numpy",
        ndarray(x),
        ndarray(w),
        None if b is None else ndarray(b),
        stride=stride,
        padding=padding,
    )
    return Case(
        f"x {x_shape}, kernel {w_shape[-1]}x{w_shape[-1]}, stride={stride}, padding={padding}",
        probe,
        expected,
    )


@SUITE.check("numpy_conv_basic")
def numpy_conv_basic(fx: Fixtures) -> Iterator[Case]:
    yield numpy_case(fx, (2, 3, 8, 9), (4, 3, 3, 3), True, 1, 0)
    yield numpy_case(fx, (1, 1, 5, 5), (2, 1, 2, 2), False, 1, 0)


@SUITE.check("numpy_conv_stride_padding")
def numpy_conv_stride_padding(fx: Fixtures) -> Iterator[Case]:
    for stride, padding in ((2, 0), (1, 1), (2, 1), (3, 2)):
        yield numpy_case(fx, (2, 3, 9, 8), (4, 3, 3, 3), True, stride, padding)
