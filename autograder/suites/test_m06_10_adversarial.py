"""Hidden tests for m06_10_adversarial: the student's attacks on small float64 networks.

The sandbox builds each network from a seeded spec (``cnnkit.build_model``), often
in train mode with batch norm and dropout, so an attack that forgets eval mode gets
different values and changes the batch-norm statistics; the trusted side builds the
same network (``trusted_model``) for the float64 references in
``solutions/adversarial.py``. Random starts are off or injected, so the values agree
to rounding.

Every check first compares the outputs with the reference; what the sandbox reports
about the model afterwards (its mode, parameter gradients, weights) and the eps-ball
can only take points away from right outputs. The mode and weight checks use images
inside [eps, 1 - eps] and PGD budgets with ``alpha * steps <= eps``, so clamping and
projection bugs cost the value checks, not these.
"""

from __future__ import annotations

import pytest
import torch

from autograder.fixtures import Fixtures, trusted_model
from solutions import adversarial as ref

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
# (N, 3, 8, 8) -> 4 classes, no mode-dependent layers.
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

BN_DROPOUT = "CNN with batch norm and dropout"
NETWORKS = {BN_DROPOUT: (CNN, 5), "conv/avg-pool": (AVG_CNN, 3), "MLP": (MLP, 4)}
BALL_SLACK = 1e-5  # float32 rounding of values in [0, 1]


def mode(train: bool) -> str:
    return "train" if train else "eval"


def images(inputs: Fixtures, size: int, interior: float = 0.0) -> torch.Tensor:
    """``(size, 3, 8, 8)`` in ``[interior, 1 - interior]``."""
    return interior + (1 - 2 * interior) * inputs.rand(size, 3, 8, 8)


def sandbox_model(student, spec: dict):
    """The spec's network built in the sandbox, on the grading device: ``(cnnkit, net)``."""
    kit = student.lib("cnnkit")
    net = kit.build_model(spec)
    net.to(student.device)
    return kit, net


# --------------------------------------------------------------------------- properties


def check_ball(check, adv, x: torch.Tensor, eps: float) -> None:
    """After the values matched: within eps of x (L-inf), in [0, 1], not x itself."""
    adv = adv.detach().cpu().double()
    distance = float((adv - x).abs().max())
    check.that(
        distance <= eps + BALL_SLACK,
        f"the perturbation reaches {distance:.3g} in L-inf, more than eps = {eps:g}",
    )
    check.that(
        bool(adv.min() >= -BALL_SLACK and adv.max() <= 1 + BALL_SLACK),
        "some pixels are outside [0, 1]",
    )
    check.that(distance > 0, "the output equals the clean images")


def check_mode(check, report, train: bool) -> None:
    training = report.get("training") if isinstance(report, dict) else None
    check.that(
        training is train,
        f"the model was handed over in {mode(train)} mode and left in {mode(not train)} mode",
    )


def check_no_grads(check, report, advice: str) -> None:
    grads = report.get("grads") if isinstance(report, dict) else None
    check.that(
        isinstance(grads, list) and not any(grads),
        f"the model's parameters have gradients afterwards ({advice})",
    )


def check_untouched(check, report, spec: dict) -> None:
    check_no_grads(check, report, "use torch.autograd.grad with respect to the input")
    state = report.get("state")
    before = spec["state"]
    same = (
        isinstance(state, dict)
        and set(state) == set(before)
        and all(
            isinstance(state[k], torch.Tensor)
            and state[k].shape == v.shape
            and torch.equal(state[k].detach().cpu().to(v.dtype), v)
            for k, v in before.items()
        )
    )
    check.that(
        same, "the model's weights or batch-norm statistics changed (a forward pass in train mode?)"
    )


# --------------------------------------------------------------------------- FGSM


def fgsm_case(name: str, train: bool, eps: float):
    return pytest.param(name, train, eps, id=f"{name} in {mode(train)} mode, eps={eps:g}")


def run_fgsm(student, check, inputs, reference, name, train, eps, interior=0.0):
    """The student's FGSM compared with the reference; ``(cnnkit, net, spec, x, adv)``."""
    layers, classes = NETWORKS[name]
    spec = inputs.model_spec(layers, train=train)
    x, y = images(inputs, 6, interior), inputs.randint(0, classes, 6)
    expected = reference(lambda: ref.fgsm_attack(trusted_model(spec), x, y, eps))
    kit, net = sandbox_model(student, spec)
    adv = student.fgsm_attack(net, x, y, eps)
    check.close(adv, expected)
    return kit, net, spec, x, adv


FGSM_ARGS = "name, train, eps"


@pytest.mark.parametrize(
    FGSM_ARGS,
    [
        *(fgsm_case(name, False, eps) for name in NETWORKS for eps in (0.03, 0.3)),
        fgsm_case(BN_DROPOUT, True, 0.05),
    ],
)  # eps = 0.3 pushes many pixels past 0 or 1
def test_fgsm_values(student, check, inputs, reference, name, train, eps):
    run_fgsm(student, check, inputs, reference, name, train, eps)


@pytest.mark.parametrize(FGSM_ARGS, [fgsm_case(name, False, 0.2) for name in NETWORKS])
def test_fgsm_in_ball(student, check, inputs, reference, name, train, eps):
    _, _, _, x, adv = run_fgsm(student, check, inputs, reference, name, train, eps)
    check_ball(check, adv, x, eps)


@pytest.mark.parametrize(
    FGSM_ARGS,
    [fgsm_case("MLP", True, 0.05), fgsm_case("conv/avg-pool", True, 0.05)]
    + [fgsm_case("conv/avg-pool", False, 0.05)],
)
def test_fgsm_restores_mode(student, check, inputs, reference, name, train, eps):
    kit, net, *_ = run_fgsm(student, check, inputs, reference, name, train, eps, interior=eps)
    check_mode(check, kit.model_report(net), train)


@pytest.mark.parametrize(
    FGSM_ARGS, [fgsm_case(BN_DROPOUT, True, 0.05), fgsm_case("conv/avg-pool", False, 0.05)]
)
def test_fgsm_model_untouched(student, check, inputs, reference, name, train, eps):
    kit, net, spec, *_ = run_fgsm(student, check, inputs, reference, name, train, eps, interior=eps)
    check_untouched(check, kit.model_report(net), spec)


# --------------------------------------------------------------------------- PGD


def pgd_case(name: str, train: bool, eps: float, alpha: float, steps: int, suffix: str = ""):
    label = f"{name} in {mode(train)} mode, eps={eps:g}, alpha={alpha:g}, steps={steps}{suffix}"
    return pytest.param(name, train, eps, alpha, steps, id=label)


def run_pgd(
    student, check, inputs, reference, name, train, eps, alpha, steps, start=False, interior=0.0
):
    """The student's PGD compared with the reference; ``(cnnkit, net, spec, x, adv)``."""
    layers, classes = NETWORKS[name]
    spec = inputs.model_spec(layers, train=train)
    x, y = images(inputs, 6, interior), inputs.randint(0, classes, 6)
    kwargs = {}
    if start:
        kwargs["init"] = (x + eps * (2 * inputs.rand(*x.shape) - 1)).clamp(0, 1)
    expected = reference(
        lambda: ref.pgd_attack(trusted_model(spec), x, y, eps, alpha, steps, **kwargs)
    )
    kit, net = sandbox_model(student, spec)
    adv = student.pgd_attack(net, x, y, eps, alpha, steps, **kwargs)
    check.close(adv, expected)
    return kit, net, spec, x, adv


PGD_ARGS = "name, train, eps, alpha, steps"


@pytest.mark.parametrize(
    PGD_ARGS,
    [
        *(pgd_case(name, False, 0.05, 0.02, 5) for name in NETWORKS),
        *(pgd_case(name, False, 0.3, 0.1, 3) for name in NETWORKS),
        pgd_case(BN_DROPOUT, True, 0.03, 0.01, 4),
        pgd_case("MLP", False, 0.1, 0.1, 1),
    ],
)
def test_pgd_values(student, check, inputs, reference, name, train, eps, alpha, steps):
    run_pgd(student, check, inputs, reference, name, train, eps, alpha, steps)


@pytest.mark.parametrize(
    PGD_ARGS,
    [
        *(pgd_case(name, False, 0.05, 0.02, 4, ", injected start") for name in NETWORKS),
        pgd_case("MLP", False, 0.05, 0.02, 0, ", injected start"),
    ],
)
def test_pgd_injected_start(student, check, inputs, reference, name, train, eps, alpha, steps):
    run_pgd(student, check, inputs, reference, name, train, eps, alpha, steps, start=True)


@pytest.mark.parametrize(PGD_ARGS, [pgd_case(name, False, 0.04, 0.1, 8) for name in NETWORKS])
def test_pgd_in_ball(student, check, inputs, reference, name, train, eps, alpha, steps):
    _, _, _, x, adv = run_pgd(student, check, inputs, reference, name, train, eps, alpha, steps)
    check_ball(check, adv, x, eps)


@pytest.mark.parametrize(
    PGD_ARGS,
    [pgd_case("MLP", True, 0.05, 0.02, 2), pgd_case("conv/avg-pool", True, 0.05, 0.02, 2)]
    + [pgd_case("conv/avg-pool", False, 0.05, 0.02, 2)],
)
def test_pgd_restores_mode(student, check, inputs, reference, name, train, eps, alpha, steps):
    kit, net, *_ = run_pgd(
        student, check, inputs, reference, name, train, eps, alpha, steps, interior=eps
    )
    check_mode(check, kit.model_report(net), train)


@pytest.mark.parametrize(
    PGD_ARGS,
    [pgd_case(BN_DROPOUT, True, 0.05, 0.02, 2), pgd_case("conv/avg-pool", False, 0.05, 0.02, 2)],
)
def test_pgd_model_untouched(student, check, inputs, reference, name, train, eps, alpha, steps):
    kit, net, spec, *_ = run_pgd(
        student, check, inputs, reference, name, train, eps, alpha, steps, interior=eps
    )
    check_untouched(check, kit.model_report(net), spec)


# --------------------------------------------------------------------------- adversarial training


def adv_loss_case(eps: float, alpha: float, steps: int):
    label = f"batch-norm CNN in train mode, eps={eps:g}, alpha={alpha:g}, steps={steps}"
    return pytest.param(eps, alpha, steps, id=label)


def run_adv_loss(student, check, inputs, reference, eps, alpha, steps, interior=0.0):
    """The student's loss compared with the reference; ``(cnnkit, net)``."""
    spec = inputs.model_spec(BN_CNN, train=True)
    x, y = images(inputs, 8, interior), inputs.randint(0, 5, 8)
    expected = reference(
        lambda: ref.adversarial_training_loss(trusted_model(spec), x, y, eps, alpha, steps).detach()
    )
    kit, net = sandbox_model(student, spec)
    loss = student.adversarial_training_loss(net, x, y, eps, alpha, steps)
    check.close(loss, expected)
    return kit, net


ADV_ARGS = "eps, alpha, steps"


@pytest.mark.parametrize(
    ADV_ARGS, [adv_loss_case(0.05, 0.02, 3), adv_loss_case(0.1, 0.1, 1), adv_loss_case(0.3, 0.1, 4)]
)
def test_adv_loss_values(student, check, inputs, reference, eps, alpha, steps):
    run_adv_loss(student, check, inputs, reference, eps, alpha, steps)


@pytest.mark.parametrize(ADV_ARGS, [adv_loss_case(0.05, 0.02, 2)])
def test_adv_loss_model_state(student, check, inputs, reference, eps, alpha, steps):
    kit, net = run_adv_loss(student, check, inputs, reference, eps, alpha, steps, interior=eps)
    report = kit.model_report(net)
    check_no_grads(check, report, "the attack called backward()?")
    check_mode(check, report, True)


# --------------------------------------------------------------------------- evaluation


def labelled(
    inputs: Fixtures,
    reference,
    spec: dict,
    size: int,
    classes: int,
    wrong: int,
    interior: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels that the model (in eval mode) gets right except for the first ``wrong``."""
    x = images(inputs, size, interior)
    shift = 1 + inputs.randint(0, classes - 1, wrong)
    y = reference(lambda: ref.predict(trusted_model(spec), x)).clone()
    y[:wrong] = (y[:wrong] + shift) % classes
    return x, y


ROBUST_SETTINGS = [(0.0, 0.01, 3, 10), (0.05, 0.02, 0, 24), (0.05, 0.02, 3, 10), (0.2, 0.05, 5, 7)]


@pytest.mark.parametrize(
    "eps, alpha, steps, batch_size",
    ROBUST_SETTINGS,
    ids=[
        f"CNN in train mode, 24 images, eps={e:g}, alpha={a:g}, steps={s}, batch_size={b}"
        for e, a, s, b in ROBUST_SETTINGS
    ],
)
def test_robust_accuracy_values(student, check, inputs, reference, eps, alpha, steps, batch_size):
    spec = inputs.model_spec(CNN, train=True)
    x, y = labelled(inputs, reference, spec, 24, 5, wrong=6)
    expected = reference(
        lambda: ref.robust_accuracy(trusted_model(spec), x, y, eps, alpha, steps, batch_size)
    )
    _, net = sandbox_model(student, spec)
    check.close(student.robust_accuracy(net, x, y, eps, alpha, steps, batch_size), float(expected))


@pytest.mark.parametrize(
    "name, train", [("MLP", True), ("MLP", False)], ids=["MLP in train mode", "MLP in eval mode"]
)
def test_robust_accuracy_mode(student, check, inputs, reference, name, train):
    layers, classes = NETWORKS[name]
    spec = inputs.model_spec(layers, train=train)
    x, y = labelled(inputs, reference, spec, 12, classes, wrong=3, interior=0.05)
    expected = reference(lambda: ref.robust_accuracy(trusted_model(spec), x, y, 0.05, 0.02, 2, 5))
    kit, net = sandbox_model(student, spec)
    check.close(student.robust_accuracy(net, x, y, 0.05, 0.02, 2, 5), float(expected))
    check_mode(check, kit.model_report(net), train)


TRANSFER_SETTINGS = [(True, 4), (False, 0), (True, 16)]


@pytest.mark.parametrize(
    "train, wrong",
    TRANSFER_SETTINGS,
    ids=[
        f"target CNN in {mode(train)} mode, {16 - wrong} of 16 clean images correct"
        for train, wrong in TRANSFER_SETTINGS
    ],
)
def test_transfer_rate_values(student, check, inputs, reference, train, wrong):
    target = inputs.model_spec(CNN, train=train)
    source = inputs.model_spec(AVG_CNN)
    source_labels = inputs.randint(0, 3, 16)
    x, y = labelled(inputs, reference, target, 16, 5, wrong=wrong)
    x_adv = reference(
        lambda: ref.pgd_attack(trusted_model(source), x, source_labels, 0.3, 0.1, 5)
    )  # crafted on another network
    expected = reference(lambda: ref.transfer_rate(trusted_model(target), x, x_adv, y))
    _, net = sandbox_model(student, target)
    check.close(student.transfer_rate(net, x, x_adv, y), float(expected))
