"""cnnkit.models: the training loop, prediction, ordered tensors, randomisation, specs and reports."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from tests.conftest import load_cnnkit

cnnkit = load_cnnkit()
CPU = torch.device("cpu")


def _segmentation_data(count: int = 48, seed: int = 0) -> TensorDataset:
    """Images ``(N, 3, 6, 6)`` whose pixel class is 1 exactly where channel 0 is positive."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(count, 3, 6, 6, generator=generator)
    return TensorDataset(images, (images[:, 0] > 0).long())


def _bn_net() -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 2, 1),
    )


# --------------------------------------------------------------------------- train_epoch


def test_train_epoch_reduces_the_loss_on_a_separable_problem():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 2, 1)
    loader = DataLoader(_segmentation_data(), batch_size=16, shuffle=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model.eval()
    losses = [
        cnnkit.train_epoch(model, loader, torch.nn.CrossEntropyLoss(), optimizer, CPU)
        for _ in range(8)
    ]
    assert all(isinstance(loss, float) for loss in losses)
    assert model.training, "train_epoch puts the model in training mode"
    assert losses[-1] < 0.5 * losses[0]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    with torch.no_grad():
        images, masks = loader.dataset.tensors
        accuracy = (model(images).argmax(1) == masks).float().mean()
    assert accuracy > 0.95


def test_train_epoch_returns_the_mean_of_the_batch_losses():
    """Batches of 16, 16 and 8: the mean over batches, not over images."""
    model = torch.nn.Conv2d(3, 2, 1)
    data = _segmentation_data(40)
    loader = DataLoader(data, batch_size=16, shuffle=False)
    loss_fn = torch.nn.CrossEntropyLoss()
    with torch.no_grad():
        expected = sum(loss_fn(model(x), y).item() for x, y in loader) / 3
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)
    assert cnnkit.train_epoch(model, loader, loss_fn, frozen, CPU) == pytest.approx(expected)


def test_train_epoch_steps_on_fresh_gradients():
    """Stale gradients are cleared before each backward pass: one SGD step is ``w - lr * g``."""
    model = torch.nn.Conv2d(3, 2, 1)
    x, y = _segmentation_data(8).tensors
    reference = torch.nn.Conv2d(3, 2, 1)
    reference.load_state_dict(model.state_dict())
    torch.nn.CrossEntropyLoss()(reference(x), y).backward()
    for parameter in model.parameters():
        parameter.grad = torch.full_like(parameter, 100.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    cnnkit.train_epoch(model, [(x, y)], torch.nn.CrossEntropyLoss(), optimizer, CPU)
    for after, before in zip(model.parameters(), reference.parameters()):
        assert torch.allclose(after, before - 0.1 * before.grad, atol=1e-6)


def test_train_epoch_of_an_empty_loader_is_zero():
    model = torch.nn.Conv2d(3, 2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert cnnkit.train_epoch(model, [], torch.nn.CrossEntropyLoss(), optimizer, CPU) == 0.0


# --------------------------------------------------------------------------- predict_batches


def test_predict_batches_yields_argmax_in_eval_mode_without_touching_the_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(_bn_net(), torch.nn.Dropout(0.9))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grad_mode_in_forward = []
    model.register_forward_hook(lambda *_: grad_mode_in_forward.append(torch.is_grad_enabled()))
    loader = DataLoader(_segmentation_data(20), batch_size=8, shuffle=False)
    batches = []
    for images, targets, predictions in cnnkit.predict_batches(model, loader, CPU):
        assert torch.is_grad_enabled(), "the caller's grad mode is kept between batches"
        batches.append((images, targets, predictions))
    assert [len(images) for images, _, _ in batches] == [8, 8, 4]
    assert grad_mode_in_forward == [False] * 3, "the model runs without gradients"
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed: BatchNorm ran in training mode"
    all_images, all_targets = loader.dataset.tensors
    with torch.no_grad():
        expected = model(all_images).argmax(1)
    got = torch.cat([p for _, _, p in batches])
    assert got.shape == (20, 6, 6) and got.dtype == torch.int64 and got.device.type == "cpu"
    assert torch.equal(got, expected)
    assert torch.equal(torch.cat([t for _, t, _ in batches]), all_targets)
    assert not any(p.requires_grad for _, _, p in batches)


# --------------------------------------------------------------------------- ordered tensors


def test_ordered_tensors_are_parameters_then_floating_buffers():
    model = _bn_net()
    conv1, bn, _, conv2 = model
    tensors = cnnkit.ordered_tensors(model)
    expected = [
        conv1.weight,
        conv1.bias,
        bn.weight,
        bn.bias,
        conv2.weight,
        conv2.bias,
        bn.running_mean,
        bn.running_var,
    ]
    assert len(tensors) == len(expected)
    assert all(a is b for a, b in zip(tensors, expected)), "the module's own tensors, in order"


def test_load_ordered_round_trips_parameters_and_statistics():
    source = cnnkit.randomize_(_bn_net(), seed=3)
    target = _bn_net()
    values = [t.detach().clone() for t in cnnkit.ordered_tensors(source)]
    assert cnnkit.load_ordered(target, values) is target
    for (key, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        if key.endswith("num_batches_tracked"):
            continue
        assert torch.equal(a, b), key
    x = torch.randn(2, 3, 5, 5)
    source.eval(), target.eval()
    with torch.no_grad():
        assert torch.equal(source(x), target(x))


def test_load_ordered_rejects_a_wrong_count_or_shape():
    model = _bn_net()
    values = [t.detach().clone() for t in cnnkit.ordered_tensors(model)]
    with pytest.raises(ValueError, match="has 8 parameter and buffer tensors, expected 7"):
        cnnkit.load_ordered(model, values[:-1])
    values[4] = torch.zeros(2, 4, 3, 3)
    with pytest.raises(
        ValueError, match=r"tensor 4 has shape \(2, 4, 1, 1\), expected \(2, 4, 3, 3\)"
    ):
        cnnkit.load_ordered(model, values)


def test_load_ordered_converts_dtype_and_keeps_no_reference():
    model = torch.nn.Linear(2, 2).double()
    values = [torch.ones(2, 2, dtype=torch.float32), torch.zeros(2, dtype=torch.float32)]
    cnnkit.load_ordered(model, values)
    assert model.weight.dtype == torch.float64 and torch.equal(
        model.weight, torch.ones(2, 2).double()
    )
    values[0].fill_(5)
    assert model.weight.max() == 1, "values are copied in, not shared"


# --------------------------------------------------------------------------- randomize_


def test_randomize_is_deterministic_per_seed_and_changes_every_tensor():
    original = _bn_net()
    before = {k: v.clone() for k, v in original.state_dict().items()}
    a = cnnkit.randomize_(original, seed=5)
    assert a is original
    b = cnnkit.randomize_(_bn_net(), seed=5)
    c = cnnkit.randomize_(_bn_net(), seed=6)
    for key, value in a.state_dict().items():
        if key.endswith("num_batches_tracked"):
            assert torch.equal(value, before[key]), "integer buffers are left alone"
            continue
        assert torch.equal(value, b.state_dict()[key]), key
        assert not torch.equal(value, c.state_dict()[key]), key
        assert not torch.equal(value, before[key]), key


def test_randomize_draws_weights_and_valid_variances():
    model = cnnkit.randomize_(
        torch.nn.Sequential(torch.nn.Conv2d(16, 32, 3), torch.nn.BatchNorm2d(64))
    )
    weight = model[0].weight.detach()
    assert 0.25 < float(weight.std()) < 0.35 and abs(float(weight.mean())) < 0.03
    variance = model[1].running_var
    assert variance.min() >= 0.5 and variance.max() <= 1.5 and variance.std() > 0.1
    assert model[1].running_mean.abs().max() > 0, "means are randomised too"
    assert model[1].weight.requires_grad, "still trainable parameters"


def test_randomize_gives_the_same_values_in_float32_and_float64():
    single = cnnkit.randomize_(torch.nn.Linear(4, 3), seed=2)
    double = cnnkit.randomize_(torch.nn.Linear(4, 3).double(), seed=2)
    assert double.weight.dtype == torch.float64
    assert torch.equal(single.weight, double.weight.float())


# --------------------------------------------------------------------------- build_model


SPEC = {
    "layers": [
        ["conv2d", 3, 4, 3],
        ["batchnorm2d", 4],
        ["relu"],
        ["maxpool2d", 2],
        ["flatten"],
        ["linear", 4 * 3 * 3, 5],
    ]
}


def test_build_model_follows_the_spec():
    model = cnnkit.build_model(SPEC)
    assert [type(layer) for layer in model] == [
        torch.nn.Conv2d,
        torch.nn.BatchNorm2d,
        torch.nn.ReLU,
        torch.nn.MaxPool2d,
        torch.nn.Flatten,
        torch.nn.Linear,
    ]
    assert model[0].in_channels == 3 and model[0].out_channels == 4
    assert model[0].kernel_size == (3, 3) and model[3].kernel_size == 2
    assert model[5].in_features == 36 and model[5].out_features == 5
    assert not model.training, "eval mode unless the spec says train"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model(torch.rand(2, 3, 8, 8)).shape == (2, 5)


def test_build_model_honours_dtype_train_and_state():
    state = cnnkit.randomize_(cnnkit.build_model(SPEC), seed=4).state_dict()
    state = {k: v.double() if v.is_floating_point() else v for k, v in state.items()}
    model = cnnkit.build_model({**SPEC, "dtype": "float64", "train": True, "state": state})
    assert model.training
    assert all(
        t.dtype == torch.float64 for t in model.state_dict().values() if t.is_floating_point()
    )
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert model(torch.rand(1, 3, 8, 8, dtype=torch.float64)).dtype == torch.float64


def test_build_model_knows_every_layer_name_in_layers():
    assert set(cnnkit.LAYERS) == {
        "conv2d", "linear", "relu", "tanh", "flatten", "maxpool2d", "avgpool2d",
        "adaptiveavgpool2d", "batchnorm2d", "dropout",
    }  # fmt: skip
    for name, cls in cnnkit.LAYERS.items():
        assert issubclass(cls, torch.nn.Module) and cls.__name__.lower() == name
    with pytest.raises(KeyError):
        cnnkit.build_model({"layers": [["conv3d", 1, 1, 1]]})


def test_build_model_rejects_a_state_that_does_not_fit():
    state = cnnkit.build_model(SPEC).state_dict()
    del state["5.bias"]
    with pytest.raises(RuntimeError, match="5.bias"):
        cnnkit.build_model({**SPEC, "state": state})


# --------------------------------------------------------------------------- model_report


def test_model_report_records_mode_gradients_and_a_copy_of_the_state():
    model = cnnkit.build_model(
        {"layers": [["linear", 3, 4], ["relu"], ["linear", 4, 2], ["linear", 2, 2]]}
    )
    model[0].requires_grad_(False)  # no gradient at all: None
    model(torch.rand(5, 3))[:, 0].sum().backward()
    model[3].bias.grad.zero_()  # a gradient of zeros
    report = cnnkit.model_report(model)
    assert report["training"] is False
    # parameters: 0.weight, 0.bias, 2.weight, 2.bias, 3.weight, 3.bias
    assert report["grads"][:2] == [False, False] and report["grads"][-1] is False
    assert report["grads"][2:5] == [True, True, True]
    assert set(report["state"]) == set(model.state_dict())
    with torch.no_grad():
        model[2].weight.add_(1.0)
    assert not torch.equal(report["state"]["2.weight"], model[2].weight), "a copy, not a view"
    assert not report["state"]["2.weight"].requires_grad


def test_model_report_follows_training_mode_and_batchnorm_statistics():
    model = cnnkit.build_model({**SPEC, "train": True})
    model(torch.rand(4, 3, 8, 8))
    report = cnnkit.model_report(model)
    assert report["training"] is True
    assert report["grads"] == [False] * len(list(model.parameters())), "no backward yet"
    assert int(report["state"]["1.num_batches_tracked"]) == 1
    assert torch.equal(report["state"]["1.running_mean"], model[1].running_mean)
