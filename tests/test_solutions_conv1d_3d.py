"""Do the 6-09 references agree with independent formulations and measurements?"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from solutions import conv1d_3d as ref
from solutions.architectures import gradient_support


def seeded(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("k, dilation", [(1, 1), (2, 1), (3, 2), (5, 3), (4, 8)])
def test_causal_conv_is_the_defining_sum(k, dilation):
    x, w, b = seeded(2, 3, 11), seeded(4, 3, k, seed=1), seeded(4, seed=2)
    y = ref.causal_conv1d(x, w, b, dilation=dilation)
    expected = torch.zeros(2, 4, 11, dtype=torch.float64) + b.view(1, 4, 1)
    for t in range(11):
        for j in range(k):
            source = t - dilation * (k - 1 - j)
            if source >= 0:
                expected[:, :, t] += x[:, :, source] @ w[:, :, j].T
    assert y.shape == (2, 4, 11)
    assert torch.allclose(y, expected)
    left = F.conv1d(F.pad(x, (dilation * (k - 1), 0)), w, b, dilation=dilation)
    assert torch.allclose(y, left)


def test_causal_conv_never_sees_the_future():
    x = seeded(1, 2, 16).requires_grad_()
    y = ref.causal_conv1d(x, seeded(3, 2, 3, seed=1), dilation=2)
    jacobian = torch.stack([ref.future_gradient(y, x, t).abs().sum() for t in range(15)])
    assert (jacobian == 0).all()
    y = F.conv1d(x, seeded(3, 2, 3, seed=1), padding="same", dilation=2)  # what it rules out
    assert ref.future_gradient(y, x, 5).abs().sum() > 0


def test_temporal_block_layout_and_residual():
    block = ref.TemporalBlock(4, 6, 3, 2)
    assert [name for name, _ in block.named_parameters()] == [
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv2.bias",
        "downsample.weight",
        "downsample.bias",
    ]
    same = ref.TemporalBlock(6, 6, 3, 2)
    assert same.downsample is None and "downsample.weight" not in same.state_dict()
    same = same.double().eval()
    x = seeded(2, 6, 20)
    state = same.state_dict()

    def causal(h, name):
        return ref.causal_conv1d(h, state[name + ".weight"], state[name + ".bias"], dilation=2)

    expected = F.relu(F.relu(causal(F.relu(causal(x, "conv1")), "conv2")) + x)
    assert torch.allclose(same(x), expected)


def test_tcn_dilations_double_and_the_head_reads_the_last_step():
    net = ref.TCN(3, 2, [5, 5, 7], kernel_size=2).double().eval()
    assert [block.conv1.dilation[0] for block in net.blocks] == [1, 2, 4]
    assert [block.downsample is None for block in net.blocks] == [False, True, False]
    x = seeded(2, 3, 12)
    assert torch.allclose(net(x), net.head(net.blocks(x)[:, :, -1]))
    # causal end to end: changing the last step changes nothing before it
    changed = x.clone()
    changed[:, :, -1] += 1
    assert torch.equal(net.blocks(x)[:, :, :-1], net.blocks(changed)[:, :, :-1])


@pytest.mark.parametrize(
    "kernels, dilations",
    [([3], [1]), ([3, 3, 3], [1, 2, 4]), ([2, 5, 3], [3, 1, 2]), ([4, 2], [8, 16])],
)
def test_receptive_field_is_the_gradient_support(kernels, dilations):
    layers = [(k, 1, d) for k, d in zip(kernels, dilations)]
    assert ref.receptive_field(kernels, dilations) == gradient_support(layers)


@pytest.mark.parametrize("kernel_size, levels", [(2, 1), (2, 3), (3, 2), (3, 4), (5, 2)])
def test_tcn_receptive_field_is_measured_on_the_network(kernel_size, levels):
    net = ref.TCN(1, 1, [3] * levels, kernel_size=kernel_size).double()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.uniform_(0.1, 1.0)  # positive: every path contributes, nothing cancels
    field = ref.tcn_receptive_field(kernel_size, levels)
    x = torch.rand(1, 1, field + 20, dtype=torch.float64).add(0.1).requires_grad_()
    net(x).sum().backward()
    touched = torch.nonzero(x.grad[0, 0]).flatten()
    assert int(touched.max()) == x.shape[-1] - 1
    assert int(touched.max() - touched.min()) + 1 == field


@pytest.mark.parametrize("kernel_size", [2, 3, 5])
@pytest.mark.parametrize("length", [1, 2, 7, 15, 16, 100, 253, 254, 5000])
def test_levels_for_is_the_fewest_levels_that_cover_the_length(kernel_size, length):
    levels = ref.levels_for(kernel_size, length)
    assert levels >= 1 and ref.tcn_receptive_field(kernel_size, levels) >= length
    assert levels == 1 or ref.tcn_receptive_field(kernel_size, levels - 1) < length


def test_levels_for_rejects_a_kernel_of_one():
    with pytest.raises(ValueError, match="kernel of size 1"):
        ref.levels_for(1, 10)


def test_frames_to_clips_by_index():
    frames = torch.randint(0, 256, (2, 3, 4, 5, 3), dtype=torch.uint8)
    clips = ref.frames_to_clips(frames)
    assert clips.shape == (2, 3, 3, 4, 5) and clips.dtype == torch.float32
    assert clips[1, 2, 0, 3, 4] == frames[1, 0, 3, 4, 2].item() / 255


def test_video_classifier_functional_forward_equals_its_modules():
    net = ref.VideoClassifier(3, 4, width=6).double()
    with torch.no_grad():
        for name, value in net.state_dict().items():
            if name.endswith("running_var"):
                value.uniform_(0.5, 1.5)
            elif value.is_floating_point():
                value.normal_()
    net.eval()
    x = seeded(2, 3, 5, 9, 7)
    assert torch.allclose(net(x), net.classifier(net.features(x).flatten(1)))
    assert net(seeded(1, 3, 1, 8, 8)).shape == (1, 4)


def test_gru_baseline_reads_the_top_layer_after_the_last_step():
    net = ref.GRUBaseline(3, 5, 2, num_layers=2).double()
    x = seeded(4, 3, 9)
    output, _ = net.gru(x.transpose(1, 2))
    assert torch.allclose(net(x), net.head(output[:, -1]))


def test_gru_baseline_matches_the_gru_equations():
    """One layer, step by step with the equations of PyTorch's nn.GRU documentation."""
    net = ref.GRUBaseline(3, 4, 2).double()
    x = seeded(2, 3, 6)
    w_ih, w_hh = net.gru.weight_ih_l0, net.gru.weight_hh_l0
    b_ih, b_hh = net.gru.bias_ih_l0, net.gru.bias_hh_l0
    h = torch.zeros(2, 4, dtype=torch.float64)
    for t in range(6):
        gi, gh = x[:, :, t] @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        r = torch.sigmoid(gi[:, :4] + gh[:, :4])
        z = torch.sigmoid(gi[:, 4:8] + gh[:, 4:8])
        n = torch.tanh(gi[:, 8:] + r * gh[:, 8:])
        h = (1 - z) * n + z * h
    assert torch.allclose(net(x), net.head(h))


def test_chomp_is_a_no_op_without_padding():
    assert torch.equal(ref.Chomp1d(0)(seeded(1, 2, 3)), seeded(1, 2, 3))
    assert isinstance(ref.TemporalBlock(2, 2, 1, 1).chomp, nn.Module)
