"""Training loops and model utilities shared by notebooks and hidden tests."""

from __future__ import annotations

import torch


def train_epoch(model: torch.nn.Module, loader, loss_fn, optimizer, device: torch.device) -> float:
    """One pass over ``loader`` of ``(images (N, 3, H, W), masks (N, H, W))``; the mean loss."""
    model.train()
    total, batches = 0.0, 0
    for images, masks in loader:
        images, masks = images.to(device), masks.to(device)
        loss = loss_fn(model(images), masks)  # logits: (N, K, H, W)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total, batches = total + loss.item(), batches + 1
    return total / max(batches, 1)


def predict_batches(model: torch.nn.Module, loader, device: torch.device):
    """Yield ``(images (B, 3, H, W), targets (B, H, W), predictions (B, H, W))`` per batch, on the CPU.

    The model runs in eval mode without gradients; predictions are the argmax over classes.
    """
    model.eval()
    for images, targets in loader:
        with torch.no_grad():  # closed before each yield, so the caller keeps its grad mode
            predictions = model(images.to(device)).argmax(1).cpu()
        yield images, targets, predictions


def ordered_tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    """Parameters, then floating-point buffers (BatchNorm statistics), in registration order."""
    return [*module.parameters(), *(b for b in module.buffers() if b.is_floating_point())]


def load_ordered(module: torch.nn.Module, tensors: list[torch.Tensor]) -> torch.nn.Module:
    """Copy ``tensors`` into :func:`ordered_tensors` of ``module``, as the autograder does."""
    targets = ordered_tensors(module)
    if len(targets) != len(tensors):
        raise ValueError(
            f"the module has {len(targets)} parameter and buffer tensors, expected {len(tensors)}"
        )
    with torch.no_grad():
        for index, (target, value) in enumerate(zip(targets, tensors)):
            if target.shape != value.shape:
                raise ValueError(
                    f"tensor {index} has shape {tuple(target.shape)}, expected {tuple(value.shape)}"
                )
            target.copy_(value)
    return module


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and BatchNorm statistics (variances in [0.5, 1.5]), so every term counts."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                noise = 0.5 + torch.rand(tensor.shape, generator=generator, dtype=torch.float64)
            else:
                noise = 0.3 * torch.randn(tensor.shape, generator=generator, dtype=torch.float64)
            tensor.copy_(noise)
    return module


# --------------------------------------------------------------------------- grading helpers
# The hidden tests build trusted models with these, in the sandbox and in the grader alike.

LAYERS = {
    "conv2d": torch.nn.Conv2d,
    "linear": torch.nn.Linear,
    "relu": torch.nn.ReLU,
    "tanh": torch.nn.Tanh,
    "flatten": torch.nn.Flatten,
    "maxpool2d": torch.nn.MaxPool2d,
    "avgpool2d": torch.nn.AvgPool2d,
    "adaptiveavgpool2d": torch.nn.AdaptiveAvgPool2d,
    "batchnorm2d": torch.nn.BatchNorm2d,
    "dropout": torch.nn.Dropout,
}


def build_model(spec: dict) -> torch.nn.Sequential:
    """A small ``nn.Sequential`` from a spec: ``{"layers": [["conv2d", 3, 4, 3], ["relu"],
    ...], "state": {name: tensor}, "dtype": "float64", "train": False}``."""
    layers = [LAYERS[name](*args) for name, *args in spec["layers"]]
    model = torch.nn.Sequential(*layers).to(getattr(torch, spec.get("dtype", "float32")))
    if spec.get("state") is not None:
        model.load_state_dict(spec["state"])
    return model.train(bool(spec.get("train", False)))


def model_report(model: torch.nn.Module) -> dict:
    """What a call did to a model: its mode, which parameters hold a non-zero gradient,
    and its weights and statistics (a state dict)."""
    return {
        "training": model.training,
        "grads": [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters()],
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }
