"""References for c12_efficient_cifar (Lab 2): the blocks' forward passes, the reference
network the latency is measured against, held-out evaluation, and the fixture weights the
project's tests train.

- ``DepthwiseSeparableConv``: MobileNet V1's block, a 3x3 depthwise convolution (padding 1,
  ``groups = in_channels``, the stride) -> BatchNorm -> ReLU -> 1x1 pointwise convolution ->
  BatchNorm -> ReLU, no convolution bias. :func:`separable_forward` is that pass in float64
  from the block's own tensors (read through handles by the hidden suite).
- ``SqueezeExcite`` (Hu et al. 2018): ``x * sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2)``,
  hidden width ``max(1, channels // reduction)``; W1, W2 may be ``nn.Linear`` or 1x1
  convolutions. :func:`excite_forward` is that pass in float64.
- ``CifarNet``: the solution's network (about 0.32M parameters). It is also the latency
  reference: :data:`REFERENCE_MS` is its CPU time per image at batch 1 on one thread on the
  reference machine (the CI machine: 2 cores, no GPU), and a submission's latency is
  ``its CPU time / CifarNet's CPU time, measured in the same run x REFERENCE_MS``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

PARAMETER_LIMIT = 1_000_000
ACCURACY_TIERS = (0.50, 0.70, 0.80, 0.85, 0.90)
LATENCY_TIERS_MS = (20.0, 10.0)
# CifarNet's CPU milliseconds per image (batch 1, one thread) on the reference machine.
REFERENCE_MS = 1.5
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

# --------------------------------------------------------------------------- the solution's network


class DepthwiseSeparableConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False
        )
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.depthwise(x)))
        return F.relu(self.bn2(self.pointwise(x)))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * gate[:, :, None, None]


class CifarNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU()
        )
        self.features = nn.Sequential(
            DepthwiseSeparableConv(32, 64),
            DepthwiseSeparableConv(64, 64),
            SqueezeExcite(64),
            DepthwiseSeparableConv(64, 128, stride=2),
            DepthwiseSeparableConv(128, 128),
            SqueezeExcite(128),
            DepthwiseSeparableConv(128, 256, stride=2),
            DepthwiseSeparableConv(256, 256),
            SqueezeExcite(256),
            DepthwiseSeparableConv(256, 512, stride=2),
        )
        self.head = nn.Linear(512, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))


# --------------------------------------------------------------------------- block references


def separable_forward(x, depthwise, bn1, pointwise, bn2, eps: float = 1e-5) -> torch.Tensor:
    """The block in eval mode, float64. ``depthwise``/``pointwise``: ``{"weight", "bias",
    "stride"}``; ``bn1``/``bn2``: ``{"weight", "bias", "running_mean", "running_var"}``."""

    def norm(y, bn):
        shape = (1, -1, 1, 1)
        scale = bn["weight"].double() / torch.sqrt(bn["running_var"].double() + eps)
        return (y - bn["running_mean"].double().view(shape)) * scale.view(shape) + bn[
            "bias"
        ].double().view(shape)

    def bias(conv):
        return None if conv.get("bias") is None else conv["bias"].double()

    x = x.double()
    groups = depthwise["weight"].shape[0]
    y = F.conv2d(
        x,
        depthwise["weight"].double(),
        bias(depthwise),
        stride=depthwise["stride"],
        padding=1,
        groups=groups,
    )
    y = F.relu(norm(y, bn1))
    y = F.conv2d(y, pointwise["weight"].double(), bias(pointwise))
    return F.relu(norm(y, bn2))


def excite_forward(x, w1, b1, w2, b2) -> torch.Tensor:
    """x * sigmoid(W2 relu(W1 mean + b1) + b2) in float64; 1x1 convolution weights are flattened."""
    x = x.double()
    w1, w2 = w1.double().flatten(1), w2.double().flatten(1)
    pooled = x.mean(dim=(2, 3))
    hidden = F.relu(pooled @ w1.T + (0 if b1 is None else b1.double()))
    gate = torch.sigmoid(hidden @ w2.T + (0 if b2 is None else b2.double()))
    return x * gate[:, :, None, None]


def excite_parameters(channels: int, reduction: int = 4) -> int:
    hidden = max(1, channels // reduction)
    return 2 * channels * hidden + hidden + channels


def separable_conv_weights(in_channels: int, out_channels: int) -> int:
    """Weights of the two convolutions: 3x3 depthwise and 1x1 pointwise (no bias)."""
    return 9 * in_channels + in_channels * out_channels


# --------------------------------------------------------------------------- data


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 32, 32, 3) CIFAR arrays -> float32 (N, 3, 32, 32), normalised."""
    x = images.permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def heldout_set(folder: Path | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The held-out images (normalised float32) and labels, and what they are.

    ``folder``: the course's held-out data (``c.Autograder.heldout_data``), a folder that
    holds ``cifar-10-batches-py/test_batch`` or is one; None: the offline fixture's test
    split, written as the notebook's own loader does.
    """
    import pickle

    import numpy as np

    if folder is None:
        import tempfile

        from autograder.course import load_helper

        root = Path(tempfile.gettempdir()) / "c12_efficient_cifar_heldout"
        batch = root / "cifar-10-batches-py" / "test_batch"
        if not batch.is_file():
            load_helper().write_cifar10_fixture(root)
        label = "the offline CIFAR-10 fixture's test split"
    else:
        folder = Path(folder)
        candidates = [folder / "cifar-10-batches-py" / "test_batch", folder / "test_batch"]
        batch = next((c for c in candidates if c.is_file()), candidates[0])
        label = f"the held-out set {folder}"
    with open(batch, "rb") as handle:  # the instructor's own file, read in the judge
        entry = pickle.load(handle, encoding="latin1")
    data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = torch.tensor(entry.get("labels", entry.get("fine_labels")), dtype=torch.long)
    return normalise(torch.from_numpy(data.copy())), labels, label


# --------------------------------------------------------------------------- timing


def reference_cpu_per_image(images: torch.Tensor, rounds: int = 3) -> float:
    """CifarNet's CPU seconds per image at batch 1 on one thread, in this process (the
    judge's): the best of ``rounds`` passes over ``images``. Autograd records, as it does
    for a call into the sandbox."""
    model = CifarNet().eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        best = float("inf")
        model(images[:1])
        for _ in range(rounds):
            start = time.process_time()
            for image in images:
                model(image[None]).detach()
            best = min(best, (time.process_time() - start) / len(images))
        return best
    finally:
        torch.set_num_threads(threads)


def call_overhead_cpu(image: torch.Tensor, in_process: bool = False, repeats: int = 200) -> float:
    """CPU seconds one remote call spends outside the model: the sandbox decodes the request
    and encodes the logits (in process, the judge's side of both as well). Measured here, in
    the judge, and subtracted from the submission's time per call."""
    from autograder.child.protocol import decode, encode

    request = encode({"op": "call", "target": {"handle": 1}, "args": (image[None],), "kwargs": {}})
    response = {"id": 1, "ok": True, "value": torch.zeros(1, 10)}
    start = time.process_time()
    for _ in range(repeats):
        decode(request)
        frame = encode(response)
        if in_process:
            encode(decode(request))
            decode(frame)
    return (time.process_time() - start) / repeats


# --------------------------------------------------------------------------- fixture weights


def train_fixture_weights(path: Path, epochs: int = 5, seed: int = 0) -> Path:
    """Train CifarNet on the offline fixture's training split and save its state dict:
    the weights the project's tests submit beside the solution notebook."""
    import pickle

    import numpy as np

    from autograder.course import load_helper

    torch.manual_seed(seed)
    folder = load_helper().write_cifar10_fixture(Path(path).parent / "cifar-fixture")
    images, labels = [], []
    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "rb") as handle:
            entry = pickle.load(handle, encoding="latin1")
        images.append(np.asarray(entry["data"], dtype=np.uint8))
        labels += entry["labels"]
    data = np.concatenate(images).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    x = normalise(torch.from_numpy(data.copy()))
    y = torch.tensor(labels)
    model = CifarNet()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for start in range(0, len(x), 25):
            batch = order[start : start + 25]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    torch.save(model.state_dict(), path)
    return Path(path)
