"""Hidden tests for c12_deployment (12.7): affine INT8 quantisation, an integer matmul with an
int32 accumulator, L1 and Ln pruning masks, the distillation loss and torch.export.

- Quantisation, the matmul, pruning and the distillation loss against the float64
  references of ``solutions/deployment.py`` (checked against torch.ao's observers,
  ``torch.fake_quantize_per_*_affine``, ``torch.nn.utils.prune`` and ``F.kl_div`` by
  tests/test_solutions_deployment.py), on float32 inputs. Integers are compared exactly.
  Rounding ties are kept at least 1e-3 of a level away, except in the check about ties,
  whose halves are exact in float32 (power-of-two scales), so dividing by the scale and
  multiplying by its inverse give the same levels.
- Pruning inputs have distinct magnitudes and distinct channel norms.
- Export: the sandbox builds a float64 network from a seeded spec (``cnnkit.build_model``),
  the student's ``export_model`` exports it there and the program stays there as a handle;
  the tests run it (``run_exported`` and the program's own ``.module()``) on other inputs and
  batch sizes and compare with the trusted float64 model in eval mode. ``.module()``,
  ``graph_module`` and the type check exist only on an ExportedProgram, so an eager model
  returned unchanged fails every export check.
"""

from __future__ import annotations

import pytest
import torch

from autograder.fixtures import number, trusted_model
from autograder.remote import Handle
from solutions import deployment as ref

DTYPES = {"int8": torch.int8, "uint8": torch.uint8}
TIE_MARGIN = 1e-3

# --------------------------------------------------------------------------- inputs


def spread_tensor(inputs, shape, low: float, high: float) -> torch.Tensor:
    """float32 values in [low, high], both ends nearly reached (each end within 10% of the
    width, at random: the zero-point quotient is then a tie only by chance)."""
    x = inputs.rand(*shape) * (high - low) + low
    flat = x.reshape(-1)
    flat[0] = low + 0.1 * (high - low) * float(inputs.rand(1))
    flat[-1] = high - 0.1 * (high - low) * float(inputs.rand(1))
    return x.float()


def untied(inputs, make, dtype, axis=None):
    """A tensor from ``make()`` whose zero-point quotient lo / scale is no tie."""
    for _ in range(100):
        x = make()
        scale, _ = ref.affine_qparams(x, dtype, axis)
        lo, _ = ref._per_slice(x, axis)
        if not ref.is_half_tie(lo.clamp(max=0) / scale, TIE_MARGIN):
            return x
    raise RuntimeError("no input away from rounding ties")


def check_qparams(check, got, expected) -> None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        check.fail("affine_qparams should return a pair (scale, zero_point)")
    scale, zero_point = got
    check.close(scale, expected[0], "scale")
    if type(zero_point) is torch.Tensor and zero_point.is_floating_point():
        check.fail("zero_point is a floating-point tensor; return an integer tensor")
    check.equal(zero_point, expected[1], "zero_point")


# --------------------------------------------------------------------------- scale and zero point

PER_TENSOR = [
    ("int8", (6, 7), -1.3, 2.1),
    ("uint8", (6, 7), -1.3, 2.1),
    ("int8", (50,), -0.02, 0.015),
    ("uint8", (3, 4, 5), -7.0, 0.5),
    ("int8", (2, 8, 3, 3), -0.25, 3.5),
]


@pytest.mark.parametrize(
    "dtype, shape, low, high",
    PER_TENSOR,
    ids=[f"{d}, shape {s}, values in [{lo}, {hi}]" for d, s, lo, hi in PER_TENSOR],
)
def test_qparams_per_tensor(student, check, inputs, dtype, shape, low, high):
    x = untied(inputs, lambda: spread_tensor(inputs, shape, low, high), DTYPES[dtype])
    got = student.affine_qparams(x, DTYPES[dtype])
    check_qparams(check, got, ref.affine_qparams(x, DTYPES[dtype]))


def channel_weight(inputs, shape, axis):
    """Random weights whose slices along ``axis`` have ranges from 0.01 to 5, offset."""
    x = inputs.randn(*shape)
    ranges = torch.logspace(-2, 0.7, shape[axis], dtype=torch.float64)
    ranges = ranges[torch.randperm(shape[axis], generator=inputs.generator)]
    view = [1] * len(shape)
    view[axis] = -1
    offsets = 0.5 * inputs.randn(shape[axis]).reshape(view) * ranges.reshape(view)
    return (x * ranges.reshape(view) + offsets).float()


PER_CHANNEL = [
    ("int8", (8, 3, 3, 3), 0),
    ("uint8", (8, 3, 3, 3), 0),
    ("int8", (10, 6), 0),
    ("int8", (4, 6, 2), 1),
    ("uint8", (5, 7), 1),
]


@pytest.mark.parametrize(
    "dtype, shape, axis",
    PER_CHANNEL,
    ids=[f"{d}, shape {s}, axis {a}" for d, s, a in PER_CHANNEL],
)
def test_qparams_per_channel(student, check, inputs, dtype, shape, axis):
    x = untied(inputs, lambda: channel_weight(inputs, shape, axis), DTYPES[dtype], axis)
    got = student.affine_qparams(x, DTYPES[dtype], axis=axis)
    check_qparams(check, got, ref.affine_qparams(x, DTYPES[dtype], axis))


def edge_tensor(inputs, case: str):
    if case.startswith("all positive"):
        return spread_tensor(inputs, (5, 4), 0.5, 3.0), None
    if case.startswith("all negative"):
        return spread_tensor(inputs, (5, 4), -2.0, -0.1), None
    if case.startswith("all zero"):
        return torch.zeros(3, 4), None
    w = channel_weight(inputs, (4, 5), 0)
    w[1] = 0.0  # an all-zero channel
    w[2] = 1.5  # a constant positive channel
    return w, 0


EDGES = [
    "all positive, int8",
    "all positive, uint8",
    "all negative, int8",
    "all negative, uint8",
    "all zero, int8",
    "all zero, uint8",
    "constant and zero channels, int8",
]


@pytest.mark.parametrize("case", EDGES)
def test_qparams_edge_cases(student, check, inputs, case):
    dtype = DTYPES[case.rsplit(", ", 1)[1]]
    x, axis = edge_tensor(inputs, case)
    got = (
        student.affine_qparams(x, dtype)
        if axis is None
        else student.affine_qparams(x, dtype, axis=axis)
    )
    check_qparams(check, got, ref.affine_qparams(x, dtype, axis))


# --------------------------------------------------------------------------- quantise


def parameters(inputs, dtype: torch.dtype, channels: int | None = None):
    """float32 scales in [0.005, 0.2] and zero points inside the range."""
    qmin, qmax = ref.qrange(dtype)
    count = 1 if channels is None else channels
    scale = (inputs.rand(count) * 0.195 + 0.005).float()
    zero_point = torch.randint(qmin + 20, qmax - 19, (count,), generator=inputs.generator)
    if channels is None:  # 0-d, as affine_qparams returns per tensor
        return scale.reshape(()), zero_point.reshape(())
    return scale, zero_point


def values_on_levels(inputs, scale, zero_point, dtype, shape, axis=None, outside=0):
    """float32 values (level + f) * scale with |f| <= 0.4 (no ties), levels up to ``outside``
    beyond the integer range."""
    qmin, qmax = ref.qrange(dtype)
    s = ref._broadcast(scale.double(), torch.empty(shape), axis)
    z = ref._broadcast(zero_point.double(), torch.empty(shape), axis)
    levels = torch.randint(qmin - outside, qmax + outside + 1, shape, generator=inputs.generator)
    x = ((levels - z) + (inputs.rand(*shape) - 0.5) * 0.8) * s
    return x.float()


def check_levels(check, got, expected) -> None:
    if type(got) is torch.Tensor and got.is_floating_point():
        check.fail("quantize returned a floating-point tensor; return an integer tensor")
    check.equal(got, expected, "levels")


QUANTIZE = [("int8", (40,)), ("uint8", (6, 9)), ("int8", (2, 3, 4, 4)), ("uint8", (100,))]


@pytest.mark.parametrize("dtype, shape", QUANTIZE, ids=[f"{d}, shape {s}" for d, s in QUANTIZE])
def test_quantize_values(student, check, inputs, dtype, shape):
    scale, zero_point = parameters(inputs, DTYPES[dtype])
    x = values_on_levels(inputs, scale, zero_point, DTYPES[dtype], shape)
    expected = ref.quantize(x, scale, zero_point, DTYPES[dtype])
    check_levels(check, student.quantize(x, scale, zero_point, DTYPES[dtype]), expected)


def tie_values(inputs, dtype):
    """Exact halves (level + 0.5) * 2^-e and a few values far outside the range."""
    qmin, qmax = ref.qrange(dtype)
    scale = torch.tensor(2.0 ** -inputs.integer(2, 6))
    zero_point = torch.tensor(inputs.integer(qmin + 10, qmax - 10))
    levels = torch.randint(
        qmin - zero_point.item() - 3,
        qmax - zero_point.item() + 3,
        (30,),
        generator=inputs.generator,
    )
    halves = (levels.double() + 0.5) * scale.double()
    far = torch.tensor([1e4, -1e4, 3.0e2, -3.0e2]) * scale.double()
    return torch.cat([halves, far]).float(), scale, zero_point


@pytest.mark.parametrize("dtype", ["int8", "uint8"], ids=["int8", "uint8"])
@pytest.mark.parametrize("repeat", [1, 2], ids=["scene 1", "scene 2"])
def test_quantize_clamp_and_ties(student, check, inputs, dtype, repeat):
    x, scale, zero_point = tie_values(inputs, DTYPES[dtype])
    expected = ref.quantize(x, scale, zero_point, DTYPES[dtype])
    check_levels(check, student.quantize(x, scale, zero_point, DTYPES[dtype]), expected)


PER_CHANNEL_Q = [("int8", (6, 3, 3, 3), 0), ("uint8", (5, 8), 0), ("int8", (4, 7, 2), 1)]


@pytest.mark.parametrize(
    "dtype, shape, axis",
    PER_CHANNEL_Q,
    ids=[f"{d}, shape {s}, axis {a}" for d, s, a in PER_CHANNEL_Q],
)
def test_quantize_per_channel(student, check, inputs, dtype, shape, axis):
    scale, zero_point = parameters(inputs, DTYPES[dtype], shape[axis])
    x = values_on_levels(inputs, scale, zero_point, DTYPES[dtype], shape, axis, outside=3)
    expected = ref.quantize(x, scale, zero_point, DTYPES[dtype], axis)
    got = student.quantize(x, scale, zero_point, DTYPES[dtype], axis=axis)
    check_levels(check, got, expected)


# --------------------------------------------------------------------------- dequantise


def levels(inputs, dtype: torch.dtype, shape) -> torch.Tensor:
    """Random levels of ``dtype`` with both extremes present."""
    qmin, qmax = ref.qrange(dtype)
    q = torch.randint(qmin, qmax + 1, shape, generator=inputs.generator)
    flat = q.reshape(-1)
    flat[0], flat[-1] = qmin, qmax
    return q.to(dtype)


DEQUANTIZE = [("int8", (30,)), ("uint8", (4, 9)), ("int8", (2, 3, 5))]


@pytest.mark.parametrize("dtype, shape", DEQUANTIZE, ids=[f"{d}, shape {s}" for d, s in DEQUANTIZE])
def test_dequantize_per_tensor(student, check, inputs, dtype, shape):
    q = levels(inputs, DTYPES[dtype], shape)
    scale, zero_point = parameters(inputs, DTYPES[dtype])
    if dtype == "int8":  # an extreme zero point: int8 arithmetic would overflow
        zero_point = torch.tensor(127)
    check.close(student.dequantize(q, scale, zero_point), ref.dequantize(q, scale, zero_point))


DEQUANTIZE_C = [("int8", (5, 3, 2, 2), 0), ("uint8", (3, 6), 1), ("int8", (4, 5), 0)]


@pytest.mark.parametrize(
    "dtype, shape, axis",
    DEQUANTIZE_C,
    ids=[f"{d}, shape {s}, axis {a}" for d, s, a in DEQUANTIZE_C],
)
def test_dequantize_per_channel(student, check, inputs, dtype, shape, axis):
    q = levels(inputs, DTYPES[dtype], shape)
    scale, zero_point = parameters(inputs, DTYPES[dtype], shape[axis])
    expected = ref.dequantize(q, scale, zero_point, axis)
    check.close(student.dequantize(q, scale, zero_point, axis=axis), expected)


# --------------------------------------------------------------------------- integer matmul


def matmul_inputs(inputs, m, k, n, a_dtype, b_dtype, zero_points: bool, per_column: bool):
    qa, qb = levels(inputs, a_dtype, (m, k)), levels(inputs, b_dtype, (k, n))
    sa, za = parameters(inputs, a_dtype)
    sb, zb = parameters(inputs, b_dtype, n if per_column else None)
    if not zero_points:
        za, zb = torch.zeros_like(za), torch.zeros_like(zb)
    return qa, sa, za, qb, sb, zb


def run_matmul(student, check, args):
    got = student.int8_matmul(*args)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        check.fail("int8_matmul should return a pair (accumulator, output)")
    return got, ref.int8_matmul(*args)


def check_accumulator(check, acc, expected) -> None:
    if type(acc) is torch.Tensor and acc.dtype != torch.int32:
        check.fail(f"the accumulator has dtype {acc.dtype}, expected torch.int32")
    check.equal(acc, expected, "accumulator")


ACCUMULATORS = [(4, 16, 3), (2, 512, 2), (7, 5, 6), (1, 300, 4)]


@pytest.mark.parametrize(
    "m, k, n",
    ACCUMULATORS,
    ids=[f"int8 ({m}, {k}) @ ({k}, {n}), zero points 0" for m, k, n in ACCUMULATORS],
)
def test_matmul_accumulator(student, check, inputs, m, k, n):
    args = matmul_inputs(inputs, m, k, n, torch.int8, torch.int8, False, False)
    if k >= 300:  # every product at its extreme: 127 * 127 * K leaves int16 far behind
        args = (
            torch.full((m, k), 127, dtype=torch.int8),
            *args[1:3],
            torch.full((k, n), -128, dtype=torch.int8),
            *args[4:],
        )
    got, expected = run_matmul(student, check, args)
    check_accumulator(check, got[0], expected[0])


ZERO_POINTS = [(5, 12, 4, False), (3, 40, 6, True), (6, 7, 2, True)]


@pytest.mark.parametrize(
    "m, k, n, per_column",
    ZERO_POINTS,
    ids=[
        f"uint8 ({m}, {k}) @ int8 ({k}, {n}), {'per-column' if p else 'per-tensor'} weight zero points"
        for m, k, n, p in ZERO_POINTS
    ],
)
def test_matmul_zero_points(student, check, inputs, m, k, n, per_column):
    args = matmul_inputs(inputs, m, k, n, torch.uint8, torch.int8, True, per_column)
    got, expected = run_matmul(student, check, args)
    check_accumulator(check, got[0], expected[0])


OUTPUTS = [(4, 10, 3, False), (5, 24, 6, True), (2, 9, 5, True)]


@pytest.mark.parametrize(
    "m, k, n, per_column",
    OUTPUTS,
    ids=[
        f"({m}, {k}) @ ({k}, {n}), {'per-column' if p else 'per-tensor'} weight scales"
        for m, k, n, p in OUTPUTS
    ],
)
def test_matmul_output(student, check, inputs, m, k, n, per_column):
    args = matmul_inputs(inputs, m, k, n, torch.uint8, torch.int8, True, per_column)
    got, expected = run_matmul(student, check, args)
    check.close(got[1], expected[1], "dequantised output")


# --------------------------------------------------------------------------- pruning


def distinct_weight(inputs, shape) -> torch.Tensor:
    """float32 weights whose magnitudes are all different (at least 1e-4 apart)."""
    count = int(torch.tensor(shape).prod())
    magnitudes = (torch.randperm(count, generator=inputs.generator).double() + 1) / count
    signs = torch.where(inputs.rand(count) < 0.5, -1.0, 1.0).double()
    return (magnitudes * signs).reshape(shape).float()


def check_pruned(check, got, expected) -> None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        check.fail("return a pair (pruned weight, mask)")
    pruned, mask = got
    if type(mask) is torch.Tensor and mask.dtype == torch.bool:
        mask = mask.double()  # a bool mask is fine
    check.close(mask, expected[1], "mask")
    check.close(pruned, expected[0], "pruned weight")


L1_MASKS = [((4, 10), 0.3), ((6, 3, 3, 3), 0.62), ((16, 8), 0.9), ((5, 4, 2), 0.13), ((7,), 0.55)]


@pytest.mark.parametrize(
    "shape, amount", L1_MASKS, ids=[f"weight {s}, amount {a}" for s, a in L1_MASKS]
)
def test_l1_masks(student, check, inputs, shape, amount):
    weight = distinct_weight(inputs, shape)
    check_pruned(
        check, student.l1_unstructured(weight, amount), ref.l1_unstructured(weight, amount)
    )


# amount * n = 2.5, 3.5, 2.5, 1.5, 4.5: half to even gives 2, 4, 2, 2, 4
L1_ROUNDING = [
    ((2, 5), 0.25),
    ((2, 7), 0.25),
    ((4, 5), 0.125),
    ((4,), 0.375),
    ((3, 3, 2, 2), 0.125),
]


@pytest.mark.parametrize(
    "shape, amount",
    L1_ROUNDING,
    ids=[
        f"weight {s}, amount {a}: round({a * torch.tensor(s).prod().item():g})"
        for s, a in L1_ROUNDING
    ],
)
def test_l1_amount_rounding(student, check, inputs, shape, amount):
    weight = distinct_weight(inputs, shape)
    check_pruned(
        check, student.l1_unstructured(weight, amount), ref.l1_unstructured(weight, amount)
    )


L1_COUNTS = [((4, 6), 5), ((3, 4), 1), ((3, 4), 1.0), ((2, 3, 3), 0), ((5,), 0.0), ((6, 2), 11)]


@pytest.mark.parametrize(
    "shape, amount", L1_COUNTS, ids=[f"weight {s}, amount {a!r}" for s, a in L1_COUNTS]
)
def test_l1_counts(student, check, inputs, shape, amount):
    weight = distinct_weight(inputs, shape)
    check_pruned(
        check, student.l1_unstructured(weight, amount), ref.l1_unstructured(weight, amount)
    )


def channel_distinct(inputs, shape, dim) -> torch.Tensor:
    """float32 weights whose slices along ``dim`` have clearly different norms of any order."""
    scales = (torch.randperm(shape[dim], generator=inputs.generator).double() + 1) * 0.25
    view = [1] * len(shape)
    view[dim] = -1
    base = 0.5 + 0.5 * inputs.rand(*shape)
    signs = torch.where(inputs.rand(*shape) < 0.5, -1.0, 1.0).double()
    return (base * signs * scales.reshape(view)).float()


def norm_sensitive(inputs, shape, amount, n, dim) -> torch.Tensor:
    """Heavy-tailed float32 weights whose pruned slices under the Ln norm differ from those
    under the L2 norm (for n != 2), with every norm at least 1e-3 (relative) from the next."""
    for _ in range(200):
        weight = (inputs.randn(*shape) ** 3).float()
        flat = weight.double().movedim(dim, 0).reshape(shape[dim], -1)
        norms = torch.linalg.vector_norm(flat, ord=n, dim=1).sort().values
        if bool(((norms[1:] - norms[:-1]) / norms[1:] < 1e-3).any()):
            continue
        masks = [ref.ln_structured(weight, amount, n=order, dim=dim)[1] for order in (n, 2)]
        if n == 2 or not torch.equal(*masks):
            return weight
    raise RuntimeError("no weight whose norms separate the orders")


def run_ln(student, check, inputs, shape, amount, n, dim, sensitive=False):
    if sensitive:
        weight = norm_sensitive(inputs, shape, amount, n, dim)
    else:
        weight = channel_distinct(inputs, shape, dim)
    got = student.ln_structured(weight, amount, n=n, dim=dim)
    check_pruned(check, got, ref.ln_structured(weight, amount, n=n, dim=dim))


LN_FILTERS = [((8, 3, 3, 3), 0.5), ((6, 4, 3, 3), 0.33), ((10, 7), 0.7), ((5, 2, 1, 1), 0.2)]


@pytest.mark.parametrize(
    "shape, amount", LN_FILTERS, ids=[f"weight {s}, amount {a}, L2, dim 0" for s, a in LN_FILTERS]
)
def test_ln_filters(student, check, inputs, shape, amount):
    run_ln(student, check, inputs, shape, amount, 2, 0)


LN_NORMS = [
    ((6, 4, 3, 3), 0.5, 1, 0),
    ((6, 4, 3, 3), 0.5, float("inf"), 0),
    ((4, 8, 3, 3), 0.4, 2, 1),
    ((5, 6), 0.3, 1, 1),
]


@pytest.mark.parametrize(
    "shape, amount, n, dim",
    LN_NORMS,
    ids=[f"weight {s}, amount {a}, n={n}, dim {d}" for s, a, n, d in LN_NORMS],
)
def test_ln_norms_and_dims(student, check, inputs, shape, amount, n, dim):
    run_ln(student, check, inputs, shape, amount, n, dim, sensitive=True)


# channels * amount = 2.5, 1.5, 2.5, 3.5: half to even gives 2, 2, 2, 4; then int amounts
LN_ROUNDING = [
    ((10, 3, 3, 3), 0.25),
    ((6, 4), 0.25),
    ((4, 5), 0.625),
    ((14, 2, 1, 1), 0.25),
    ((6, 2, 3, 3), 2),
    ((5, 3), 0),
]


@pytest.mark.parametrize(
    "shape, amount",
    LN_ROUNDING,
    ids=[f"weight {s}, amount {a!r}, L2, dim 0" for s, a in LN_ROUNDING],
)
def test_ln_amount_rounding(student, check, inputs, shape, amount):
    run_ln(student, check, inputs, shape, amount, 2, 0)


# --------------------------------------------------------------------------- distillation


def logits(inputs, n: int, c: int, spread: float = 3.0):
    s = (spread * inputs.randn(n, c)).float()
    t = (spread * inputs.randn(n, c)).float()
    return s, t, inputs.randint(0, c, n)


KD_VALUES = [
    (8, 10, 4.0, 0.5),
    (3, 5, 2.0, 0.3),
    (16, 100, 8.0, 0.7),
    (1, 4, 3.0, 0.9),
    (5, 10, 1.5, 0.1),
]


@pytest.mark.parametrize(
    "n, c, tau, alpha",
    KD_VALUES,
    ids=[f"batch {n}, {c} classes, tau {t}, alpha {a}" for n, c, t, a in KD_VALUES],
)
def test_kd_values(student, check, inputs, n, c, tau, alpha):
    s, t, y = logits(inputs, n, c)
    expected = ref.distillation_loss(s, t, y, tau, alpha)
    check.close(number(student.distillation_loss(s, t, y, tau, alpha)), float(expected), "loss")


KD_EDGES = [(6, 10, 4.0, 1.0), (6, 10, 4.0, 0.0), (4, 7, 1.0, 0.5), (5, 3, 1.0, 0.0)]


@pytest.mark.parametrize(
    "n, c, tau, alpha",
    KD_EDGES,
    ids=[f"batch {n}, {c} classes, tau {t}, alpha {a}" for n, c, t, a in KD_EDGES],
)
def test_kd_alpha_and_tau(student, check, inputs, n, c, tau, alpha):
    s, t, y = logits(inputs, n, c)
    expected = ref.distillation_loss(s, t, y, tau, alpha)
    got = student.distillation_loss(s, t, y, tau=tau, alpha=alpha)
    check.close(number(got), float(expected), "loss")


KD_GRADS = [(6, 10, 4.0, 0.5), (3, 5, 2.0, 0.2)]


@pytest.mark.parametrize(
    "n, c, tau, alpha",
    KD_GRADS,
    ids=[f"batch {n}, {c} classes, tau {t}, alpha {a}" for n, c, t, a in KD_GRADS],
)
def test_kd_gradient(student, check, inputs, reference, n, c, tau, alpha):
    s, t, y = logits(inputs, n, c)

    def expected():
        leaf = s.double().requires_grad_(True)
        loss = ref.distillation_loss(leaf, t, y, tau, alpha)
        loss.backward()
        return loss.detach(), leaf.grad

    loss, grad = reference(expected)
    got = student.distillation_loss.with_grads(
        s, t, y, tau, alpha, wrt=(0,), grad_output=torch.tensor(1.0)
    )
    check.close(number(got["value"]), float(loss), "loss")
    if not isinstance(got["grads"], list):
        check.fail(f"gradient: {got['grads'] or 'none were computed'}")
    check.close(got["grads"][0], grad, "gradient with respect to the student's logits")


# --------------------------------------------------------------------------- export

CNN = [
    ["conv2d", 3, 4, 3, 1, 1],
    ["batchnorm2d", 4],
    ["relu"],
    ["maxpool2d", 2],
    ["conv2d", 4, 6, 3],
    ["tanh"],
    ["adaptiveavgpool2d", 1],
    ["flatten"],
    ["dropout", 0.3],
    ["linear", 6, 5],
]
MLP = [["flatten"], ["linear", 3 * 8 * 8, 16], ["relu"], ["linear", 16, 4]]
AVG_CNN = [["conv2d", 3, 5, 3], ["relu"], ["avgpool2d", 2], ["flatten"], ["linear", 5 * 3 * 3, 3]]
NETWORKS = {"CNN with batch norm and dropout": CNN, "MLP": MLP, "conv/avg-pool": AVG_CNN}


def exported(student, inputs, name: str, example_batch: int, train: bool = False):
    """(spec, program handle): the student's export of the spec's network, built in the sandbox."""
    spec = inputs.model_spec(NETWORKS[name], train=train)
    net = student.lib("cnnkit").build_model(spec)
    net.to(student.device)
    program = student.export_model(net, inputs.rand(example_batch, 3, 8, 8))
    return spec, program


def eager(reference, spec, x):
    def run():
        with torch.no_grad():
            return trusted_model(spec).eval()(x.double())

    return reference(run)


def run_program(check, program, x):
    """The program's own module on x (only an ExportedProgram has .module())."""
    if not isinstance(program, Handle):
        check.fail("export_model should return the ExportedProgram of torch.export.export")
    return program.module()(x)


def compare_runs(student, check, program, x, expected) -> None:
    check.close(run_program(check, program, x), expected, "program.module()(x)")
    check.close(student.run_exported(program, x), expected, "run_exported(program, x)")


EXPORTS = [("CNN with batch norm and dropout", 4), ("MLP", 2), ("conv/avg-pool", 3)]


@pytest.mark.parametrize(
    "name, batch", EXPORTS, ids=[f"{n}, example batch {b}" for n, b in EXPORTS]
)
def test_export_matches_eager(student, check, inputs, reference, name, batch):
    spec, program = exported(student, inputs, name, batch)
    x = inputs.rand(batch, 3, 8, 8)
    compare_runs(student, check, program, x, eager(reference, spec, x))


DYNAMIC = [
    ("CNN with batch norm and dropout", 4, [1, 7]),
    ("MLP", 2, [5, 1, 9]),
    ("conv/avg-pool", 3, [2, 6]),
]


@pytest.mark.parametrize(
    "name, batch, others",
    DYNAMIC,
    ids=[f"{n}, example batch {b}, then batches {o}" for n, b, o in DYNAMIC],
)
def test_export_dynamic_batch(student, check, inputs, reference, name, batch, others):
    spec, program = exported(student, inputs, name, batch)
    for size in others:
        x = inputs.rand(size, 3, 8, 8)
        compare_runs(student, check, program, x, eager(reference, spec, x))


@pytest.mark.parametrize("name", ["CNN with batch norm and dropout", "MLP"])
def test_export_is_program(student, check, inputs, reference, name):
    spec, program = exported(student, inputs, name, 3)
    if not isinstance(program, Handle):
        check.fail("export_model should return the ExportedProgram of torch.export.export")
    exported_program = student.lib("torch.export").get("ExportedProgram")
    is_program = student.lib("builtins").isinstance(program, exported_program)
    check.that(
        is_program is True,
        f"export_model returned an object of type {program._h_kind}, not a torch.export.ExportedProgram",
    )
    code = program.get("graph_module").get("code")
    check.that(
        isinstance(code, str) and "torch.ops.aten" in code,
        "the exported graph holds no ATen operators",
    )
    x = inputs.rand(3, 3, 8, 8)
    check.close(run_program(check, program, x), eager(reference, spec, x), "program.module()(x)")


@pytest.mark.parametrize("batch", [4, 2], ids=["example batch 4", "example batch 2"])
def test_export_eval_mode(student, check, inputs, reference, batch):
    spec, program = exported(student, inputs, "CNN with batch norm and dropout", batch, train=True)
    x = inputs.rand(batch, 3, 8, 8)
    compare_runs(student, check, program, x, eager(reference, spec, x))
