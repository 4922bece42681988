"""Do the deployment references agree with PyTorch's observers, fake quantisation, pruning
utilities and KL divergence?"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver
from torch.nn.utils import prune

from solutions import deployment as ref

DTYPES = {torch.int8: torch.qint8, torch.uint8: torch.quint8}


def data(*shape: int, seed: int = 0, shift: float = 0.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator) + shift


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8])
@pytest.mark.parametrize("shift", [0.0, 3.0, -3.0, 0.4])
def test_qparams_are_the_minmax_observers(dtype, shift):
    x = data(6, 5, seed=int(shift * 10) % 7, shift=shift)
    observer = MinMaxObserver(dtype=DTYPES[dtype], qscheme=torch.per_tensor_affine)
    observer(x)
    scale, zero_point = observer.calculate_qparams()
    got_scale, got_zero = ref.affine_qparams(x, dtype)
    assert torch.allclose(got_scale.float(), scale.reshape(()), rtol=1e-6)
    assert int(got_zero) == int(zero_point)


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8])
def test_per_channel_qparams_are_the_per_channel_observers(dtype):
    w = data(7, 3, 2, 2, seed=3) * torch.linspace(0.1, 3, 7).reshape(7, 1, 1, 1)
    w[2] = w[2].abs()  # a channel with no negative weights
    observer = PerChannelMinMaxObserver(
        ch_axis=0, dtype=DTYPES[dtype], qscheme=torch.per_channel_affine
    )
    observer(w)
    scale, zero_point = observer.calculate_qparams()
    got_scale, got_zero = ref.affine_qparams(w, dtype, axis=0)
    assert torch.allclose(got_scale.float(), scale, rtol=1e-6)
    assert torch.equal(got_zero, zero_point.to(torch.int64))


def test_an_all_zero_tensor_gets_the_scale_floor():
    observer = MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_affine)
    observer(torch.zeros(4))
    scale, zero_point = observer.calculate_qparams()
    got_scale, got_zero = ref.affine_qparams(torch.zeros(4), torch.int8)
    assert float(got_scale) == float(scale) == ref.EPS
    assert int(got_zero) == int(zero_point) == -128


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8])
def test_quantize_dequantize_is_fake_quantize(dtype):
    x = data(200, seed=5) * 2
    scale, zero_point = ref.affine_qparams(x[:150], dtype)  # the rest may leave the range
    qmin, qmax = ref.qrange(dtype)
    assert not ref.is_half_tie(x.double() / scale, 1e-4)
    q = ref.quantize(x, scale, zero_point, dtype)
    assert int(q.min()) >= qmin and int(q.max()) <= qmax
    fake = torch.fake_quantize_per_tensor_affine(x, float(scale), int(zero_point), qmin, qmax)
    assert torch.allclose(ref.dequantize(q, scale, zero_point).float(), fake, rtol=1e-6)
    quantized = torch.quantize_per_tensor(x, float(scale), int(zero_point), DTYPES[dtype])
    assert torch.equal(q, quantized.int_repr().to(torch.int64))


def test_per_channel_quantize_is_fake_quantize_per_channel():
    w = data(5, 4, 3, seed=8) * torch.arange(1, 6).reshape(5, 1, 1)
    scale, zero_point = ref.affine_qparams(w, torch.int8, axis=0)
    q = ref.quantize(w, scale, zero_point, torch.int8, axis=0)
    fake = torch.fake_quantize_per_channel_affine(
        w, scale.float(), zero_point.to(torch.int32), 0, -128, 127
    )
    assert torch.allclose(ref.dequantize(q, scale, zero_point, axis=0).float(), fake, atol=1e-6)


def test_round_is_half_to_even():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5])
    q = ref.quantize(x, torch.tensor(1.0), torch.tensor(0), torch.int8)
    assert q.tolist() == [0, 2, 2, 0, -2]


def test_int8_matmul_is_the_float_product_of_dequantized_inputs():
    a, b = data(5, 9, seed=1), data(9, 4, seed=2)
    sa, za = ref.affine_qparams(a, torch.uint8)
    sb, zb = ref.affine_qparams(b, torch.int8, axis=1)
    qa, qb = ref.quantize(a, sa, za, torch.uint8), ref.quantize(b, sb, zb, torch.int8, axis=1)
    acc, out = ref.int8_matmul(qa, sa, za, qb, sb, zb)
    assert acc.dtype == torch.int32
    expected = ref.dequantize(qa, sa, za) @ ref.dequantize(qb, sb, zb, axis=1)
    assert torch.allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("amount", [0.3, 0.25, 0.5, 7, 0, 1, 1.0, 0.0])
def test_l1_unstructured_is_prunes(amount):
    weight = data(4, 5, seed=11)  # 20 weights: 0.25 * 20 = 5, 0.5 * 20 = 10
    module = torch.nn.Linear(5, 4)
    with torch.no_grad():
        module.weight.copy_(weight)
    prune.l1_unstructured(module, "weight", amount=amount)
    pruned, mask = ref.l1_unstructured(weight, amount)
    assert torch.equal(mask.float(), module.weight_mask)
    assert torch.allclose(pruned.float(), module.weight)


@pytest.mark.parametrize("amount, n", [(0.25, 10), (0.125, 20), (0.375, 4), (0.625, 4)])
def test_a_half_count_rounds_to_even_as_prune_does(amount, n):
    weight = data(n, seed=n)
    module = torch.nn.Linear(n, 1)
    with torch.no_grad():
        module.weight.copy_(weight.reshape(1, n))
    prune.l1_unstructured(module, "weight", amount=amount)
    expected = round(amount * n)
    assert int((module.weight_mask == 0).sum()) == expected == ref.prune_count(amount, n)
    assert expected % 2 == 0


@pytest.mark.parametrize(
    "amount, n, dim", [(0.5, 2, 0), (0.25, 1, 0), (2, float("inf"), 1), (0.375, 2, 1), (3, 2, 0)]
)
def test_ln_structured_is_prunes(amount, n, dim):
    weight = data(8, 6, 3, 3, seed=13) * torch.linspace(0.5, 2, 6).reshape(1, 6, 1, 1)
    module = torch.nn.Conv2d(6, 8, 3)
    with torch.no_grad():
        module.weight.copy_(weight)
    prune.ln_structured(module, "weight", amount=amount, n=n, dim=dim)
    pruned, mask = ref.ln_structured(weight, amount, n=n, dim=dim)
    assert torch.equal(mask.float(), module.weight_mask)
    assert torch.allclose(pruned.float(), module.weight)


@pytest.mark.parametrize("tau, alpha", [(1.0, 0.5), (4.0, 0.3), (2.5, 0.0), (3.0, 1.0)])
def test_distillation_loss_is_written_out_kl(tau, alpha):
    s, t = data(6, 10, seed=20) * 3, data(6, 10, seed=21) * 3
    labels = torch.randint(0, 10, (6,), generator=torch.Generator().manual_seed(3))
    got = ref.distillation_loss(s, t, labels, tau, alpha)
    assert torch.allclose(got, ref.distillation_loss_explicit(s, t, labels, tau, alpha))
    if alpha == 1.0:
        assert torch.allclose(got, F.cross_entropy(s.double(), labels))
