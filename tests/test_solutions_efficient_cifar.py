"""The Lab 2 references (solutions/efficient_cifar.py) against PyTorch's own modules."""

import pickle

import numpy as np
import pytest
import torch

from solutions import efficient_cifar as ref


def randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for value in module.state_dict().values():
            if value.is_floating_point():
                value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
    return module.eval()


@pytest.mark.parametrize("stride", [1, 2])
def test_separable_forward_is_the_block_in_eval_mode(stride):
    block = randomised(ref.DepthwiseSeparableConv(5, 7, stride=stride), seed=stride)
    x = torch.randn(2, 5, 9, 9, generator=torch.Generator().manual_seed(0))
    conv = lambda m: {"weight": m.weight, "bias": m.bias, "stride": m.stride}  # noqa: E731
    bn = lambda m: {k: getattr(m, k) for k in ("weight", "bias", "running_mean", "running_var")}  # noqa: E731
    expected = ref.separable_forward(
        x, conv(block.depthwise), bn(block.bn1), conv(block.pointwise), bn(block.bn2)
    )
    torch.testing.assert_close(block(x).double(), expected, rtol=1e-5, atol=1e-5)
    weights = block.depthwise.weight.numel() + block.pointwise.weight.numel()
    assert weights == ref.separable_conv_weights(5, 7)


@pytest.mark.parametrize("channels", [3, 8, 64])
def test_excite_reference_and_parameter_count(channels):
    block = randomised(ref.SqueezeExcite(channels), seed=channels)
    x = torch.randn(2, channels, 4, 4, generator=torch.Generator().manual_seed(1))
    expected = ref.excite_forward(
        x, block.fc1.weight, block.fc1.bias, block.fc2.weight, block.fc2.bias
    )
    torch.testing.assert_close(block(x).double(), expected, rtol=1e-5, atol=1e-6)
    assert sum(p.numel() for p in block.parameters()) == ref.excite_parameters(channels)


def test_the_reference_network_meets_the_parameter_budget():
    model = ref.CifarNet().eval()
    count = sum(p.numel() for p in model.parameters())
    assert count == 322_746 < ref.PARAMETER_LIMIT
    assert model(torch.zeros(3, 3, 32, 32)).shape == (3, 10)


def test_heldout_set_reads_a_cifar_test_batch(tmp_path):
    data = np.arange(4 * 3072, dtype=np.int64).reshape(4, 3072) % 256
    entry = {"data": data.astype(np.uint8), "labels": [3, 1, 4, 1]}
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps(entry))
    images, labels, label = ref.heldout_set(tmp_path)
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    assert labels.tolist() == [3, 1, 4, 1]
    assert str(tmp_path) in label
    # channel-first CIFAR rows: the first 1024 values are the red plane
    red = (torch.tensor(entry["data"][0, :1024], dtype=torch.float32) / 255).view(32, 32)
    torch.testing.assert_close(images[0, 0], (red - ref.CIFAR_MEAN[0]) / ref.CIFAR_STD[0])


def test_reference_timing_is_positive_and_per_image():
    images = torch.zeros(4, 3, 32, 32)
    seconds = ref.reference_cpu_per_image(images, rounds=1)
    assert 0 < seconds < 1
    assert 0 < ref.call_overhead_cpu(images[0], repeats=5) < seconds * 10
