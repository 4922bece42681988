"""Hidden suite for m06_10_adversarial: the student's attacks on small float64 networks.

The sandbox builds each network from a seeded spec (``model_call``), often in
train mode with batch norm and dropout, so an attack that forgets eval mode gets
different values and changes the batch-norm statistics. Random starts are off or
injected, so the references in ``solutions/adversarial.py`` must agree to rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from autograder.fixtures import Fixtures, trusted_model
from autograder.suite import Case, Suite, model_call
from solutions import adversarial as ref

SUITE = Suite("m06_10_adversarial")

TENSOR_TAG = "__tensor__"

# (N, 3, 8, 8) -> 5 classes; batch norm and dropout make train and eval mode differ.
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
# (N, 3, 8, 8) -> 3 classes, no mode-dependent layers.
AVG_CNN = [["conv2d", 3, 5, 3], ["relu"], ["avgpool2d", 2], ["flatten"], ["linear", 5 * 3 * 3, 3]]
# (N, 3, 8, 8) -> 4 classes.
MLP = [["flatten"], ["linear", 3 * 8 * 8, 16], ["relu"], ["linear", 16, 4]]
# (N, 3, 8, 8) -> 5 classes; batch norm without dropout, for the training loss in train mode.
BN_CNN = [
    ["conv2d", 3, 4, 3, 1, 1],
    ["batchnorm2d", 4],
    ["relu"],
    ["maxpool2d", 2],
    ["flatten"],
    ["linear", 64, 5],
]

NETWORKS = {
    "CNN with batch norm and dropout": (CNN, 5),
    "conv/avg-pool": (AVG_CNN, 3),
    "MLP": (MLP, 4),
}


def batch(fx: Fixtures, classes: int, size: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    return fx.rand(size, 3, 8, 8), fx.randint(0, classes, size)


def mode(train: bool) -> str:
    return "train" if train else "eval"


# --------------------------------------------------------------------------- comparators


def in_ball(x: torch.Tensor, eps: float):
    """The output is within eps of x (L-inf), in [0, 1], and not x itself."""

    def compare(actual: dict, expected, rtol: float, atol: float) -> str | None:
        value = actual.get("value")
        if not (isinstance(value, dict) and isinstance(value.get(TENSOR_TAG), torch.Tensor)):
            return "the output is not a tensor"
        adv = value[TENSOR_TAG].to(torch.float64)
        if adv.shape != x.shape:
            return f"the output has shape {tuple(adv.shape)}, expected {tuple(x.shape)}"
        if not torch.isfinite(adv).all():
            return "the output contains NaN or infinite values"
        distance = float((adv - x).abs().max())
        if distance > eps + 1e-9:
            return f"the perturbation reaches {distance:.3g} in L-inf, more than eps = {eps:g}"
        if adv.min() < 0 or adv.max() > 1:
            return "some pixels are outside [0, 1]"
        if distance == 0:
            return "the output equals the clean images"
        return None

    return compare


def mode_restored(actual: dict, expected, rtol: float, atol: float) -> str | None:
    if actual.get("model_training") is not expected["model_training"]:
        return f"the model was handed over in {mode(expected['model_training'])} mode and left in {mode(not expected['model_training'])} mode"
    return None


def untouched(actual: dict, expected, rtol: float, atol: float) -> str | None:
    if any(actual.get("model_grads", [True])):
        return "the model's parameters have gradients afterwards (use torch.autograd.grad with respect to the input)"
    if actual.get("model_changed", True):
        return (
            "the model's weights or batch-norm statistics changed (a forward pass in train mode?)"
        )
    return None


def no_parameter_grads(actual: dict, expected, rtol: float, atol: float) -> str | None:
    if any(actual.get("model_grads", [True])):
        return "the model's parameters have gradients afterwards (the attack called backward()?)"
    return mode_restored(actual, expected, rtol, atol)


# --------------------------------------------------------------------------- FGSM


def fgsm_case(
    fx: Fixtures, name: str, eps: float, train: bool, compare=None, expected=None
) -> Case:
    layers, classes = NETWORKS[name]
    spec = fx.model_spec(layers, train=train)
    x, y = batch(fx, classes)
    if expected is None:
        expected = ref.fgsm_attack(trusted_model(spec), x, y, eps)
    probe = model_call("fgsm_attack", spec, x, y, eps)
    compare = in_ball(x, eps) if compare == "ball" else compare
    return Case(f"{name} in {mode(train)} mode, eps={eps:g}", probe, expected, compare)


@SUITE.check("fgsm_values")
def fgsm_values(fx: Fixtures) -> Iterator[Case]:
    for name in NETWORKS:
        for eps in (0.03, 0.3):  # 0.3 pushes many pixels past 0 or 1
            yield fgsm_case(fx, name, eps, train=False)
    yield fgsm_case(fx, "CNN with batch norm and dropout", 0.05, train=True)


@SUITE.check("fgsm_in_ball")
def fgsm_in_ball(fx: Fixtures) -> Iterator[Case]:
    for name in NETWORKS:
        yield fgsm_case(fx, name, 0.2, train=False, compare="ball", expected={})


@SUITE.check("fgsm_restores_mode")
def fgsm_restores_mode(fx: Fixtures) -> Iterator[Case]:
    yield fgsm_case(
        fx,
        "CNN with batch norm and dropout",
        0.05,
        train=True,
        compare=mode_restored,
        expected={"model_training": True},
    )
    yield fgsm_case(
        fx, "MLP", 0.05, train=True, compare=mode_restored, expected={"model_training": True}
    )


@SUITE.check("fgsm_model_untouched")
def fgsm_model_untouched(fx: Fixtures) -> Iterator[Case]:
    yield fgsm_case(
        fx, "CNN with batch norm and dropout", 0.05, train=True, compare=untouched, expected={}
    )
    yield fgsm_case(fx, "conv/avg-pool", 0.05, train=False, compare=untouched, expected={})


# --------------------------------------------------------------------------- PGD


def pgd_case(
    fx: Fixtures,
    name: str,
    eps: float,
    alpha: float,
    steps: int,
    train: bool,
    start: bool = False,
    compare=None,
    expected=None,
) -> Case:
    layers, classes = NETWORKS[name]
    spec = fx.model_spec(layers, train=train)
    x, y = batch(fx, classes)
    kwargs = {}
    if start:
        kwargs["init"] = (x + eps * (2 * fx.rand(*x.shape) - 1)).clamp(0, 1)
    if expected is None:
        expected = ref.pgd_attack(trusted_model(spec), x, y, eps, alpha, steps, **kwargs)
    probe = model_call("pgd_attack", spec, x, y, eps, alpha, steps, **kwargs)
    compare = in_ball(x, eps) if compare == "ball" else compare
    label = f"{name} in {mode(train)} mode, eps={eps:g}, alpha={alpha:g}, steps={steps}" + (
        ", injected start" if start else ""
    )
    return Case(label, probe, expected, compare)


@SUITE.check("pgd_values")
def pgd_values(fx: Fixtures) -> Iterator[Case]:
    for name in NETWORKS:
        yield pgd_case(fx, name, 0.05, 0.02, 5, train=False)
        yield pgd_case(fx, name, 0.3, 0.1, 3, train=False)
    yield pgd_case(fx, "CNN with batch norm and dropout", 0.03, 0.01, 4, train=True)
    yield pgd_case(fx, "MLP", 0.1, 0.1, 1, train=False)


@SUITE.check("pgd_injected_start")
def pgd_injected_start(fx: Fixtures) -> Iterator[Case]:
    for name in NETWORKS:
        yield pgd_case(fx, name, 0.05, 0.02, 4, train=False, start=True)
    yield pgd_case(fx, "MLP", 0.05, 0.02, 0, train=False, start=True)


@SUITE.check("pgd_in_ball")
def pgd_in_ball(fx: Fixtures) -> Iterator[Case]:
    for name in NETWORKS:
        yield pgd_case(fx, name, 0.04, 0.1, 8, train=False, compare="ball", expected={})


@SUITE.check("pgd_restores_mode")
def pgd_restores_mode(fx: Fixtures) -> Iterator[Case]:
    yield pgd_case(
        fx,
        "CNN with batch norm and dropout",
        0.05,
        0.02,
        3,
        train=True,
        compare=mode_restored,
        expected={"model_training": True},
    )
    yield pgd_case(
        fx,
        "MLP",
        0.05,
        0.02,
        3,
        train=True,
        compare=mode_restored,
        expected={"model_training": True},
    )


@SUITE.check("pgd_model_untouched")
def pgd_model_untouched(fx: Fixtures) -> Iterator[Case]:
    yield pgd_case(
        fx,
        "CNN with batch norm and dropout",
        0.05,
        0.02,
        3,
        train=True,
        compare=untouched,
        expected={},
    )
    yield pgd_case(fx, "conv/avg-pool", 0.05, 0.02, 3, train=False, compare=untouched, expected={})


# --------------------------------------------------------------------------- adversarial training


def adv_loss_case(
    fx: Fixtures, eps: float, alpha: float, steps: int, compare=None, expected=None
) -> Case:
    spec = fx.model_spec(BN_CNN, train=True)
    x, y = batch(fx, 5, size=8)
    if expected is None:
        expected = ref.adversarial_training_loss(
            trusted_model(spec), x, y, eps, alpha, steps
        ).detach()
    probe = model_call("adversarial_training_loss", spec, x, y, eps, alpha, steps)
    return Case(
        f"batch-norm CNN in train mode, eps={eps:g}, alpha={alpha:g}, steps={steps}",
        probe,
        expected,
        compare,
    )


@SUITE.check("adv_loss_values")
def adv_loss_values(fx: Fixtures) -> Iterator[Case]:
    yield adv_loss_case(fx, 0.05, 0.02, 3)
    yield adv_loss_case(fx, 0.1, 0.1, 1)
    yield adv_loss_case(fx, 0.3, 0.1, 4)


@SUITE.check("adv_loss_model_state")
def adv_loss_model_state(fx: Fixtures) -> Iterator[Case]:
    yield adv_loss_case(
        fx, 0.05, 0.02, 3, compare=no_parameter_grads, expected={"model_training": True}
    )


# --------------------------------------------------------------------------- evaluation


def labelled(
    fx: Fixtures, spec: dict, size: int, classes: int, wrong: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels that the model (in eval mode) gets right except for the first ``wrong``."""
    x = fx.rand(size, 3, 8, 8)
    y = ref.predict(trusted_model(spec), x)
    y[:wrong] = (y[:wrong] + 1 + fx.randint(0, classes - 1, wrong)) % classes
    return x, y


@SUITE.check("robust_accuracy_values")
def robust_accuracy_values(fx: Fixtures) -> Iterator[Case]:
    spec = fx.model_spec(CNN, train=True)
    x, y = labelled(fx, spec, 24, 5, wrong=6)
    for eps, alpha, steps, batch_size in [
        (0.0, 0.01, 3, 10),
        (0.05, 0.02, 0, 24),
        (0.05, 0.02, 3, 10),
        (0.2, 0.05, 5, 7),
    ]:
        expected = ref.robust_accuracy(trusted_model(spec), x, y, eps, alpha, steps, batch_size)
        probe = model_call("robust_accuracy", spec, x, y, eps, alpha, steps, batch_size)
        label = f"CNN in train mode, 24 images, eps={eps:g}, alpha={alpha:g}, steps={steps}, batch_size={batch_size}"
        yield Case(label, probe, float(expected))


@SUITE.check("robust_accuracy_mode")
def robust_accuracy_mode(fx: Fixtures) -> Iterator[Case]:
    spec = fx.model_spec(CNN, train=True)
    x, y = labelled(fx, spec, 12, 5, wrong=3)
    probe = model_call("robust_accuracy", spec, x, y, 0.05, 0.02, 2, 5)
    yield Case("CNN in train mode", probe, {"model_training": True}, mode_restored)


@SUITE.check("transfer_rate_values")
def transfer_rate_values(fx: Fixtures) -> Iterator[Case]:
    for train, wrong in [(True, 4), (False, 0), (True, 16)]:
        target = fx.model_spec(CNN, train=train)
        source = trusted_model(fx.model_spec(AVG_CNN))
        x, y = labelled(fx, target, 16, 5, wrong=wrong)
        x_adv = ref.pgd_attack(source, x, fx.randint(0, 3, 16), 0.3, 0.1, 5)
        expected = ref.transfer_rate(trusted_model(target), x, x_adv, y)
        label = f"target CNN in {mode(train)} mode, {16 - wrong} of 16 clean images correct"
        yield Case(label, model_call("transfer_rate", target, x, x_adv, y), float(expected))
