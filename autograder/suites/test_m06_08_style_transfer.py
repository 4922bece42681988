"""Hidden tests for m06_08_style_transfer: seeded cases against the float64 references.

The losses get float32 inputs (what students use), with references computed in
float64 from the same values. The feature extractor, the total loss and the
optimisation step run on a small float64 network that the sandbox builds with
``cnnkit.build_model`` (in place of VGG19), with an in-place ReLU like VGG's.
What a step did to the network (gradients, weights, mode) is read with
``cnnkit.model_report`` and can only take away a point whose image is right.
"""

from __future__ import annotations

import pytest
import torch

from autograder.fixtures import trusted_model
from solutions import style_transfer as ref

# conv, relu, conv, in-place relu, maxpool, conv, relu, avgpool, 1x1 conv, tanh: (N, 3, 8, 8) -> (N, 4, 2, 2)
TINY_VGG = [
    ["conv2d", 3, 4, 3, 1, 1],
    ["relu"],
    ["conv2d", 4, 5, 3, 1, 1],
    ["relu", True],
    ["maxpool2d", 2],
    ["conv2d", 5, 6, 3, 1, 1],
    ["relu"],
    ["avgpool2d", 2],
    ["conv2d", 6, 4, 1],
    ["tanh"],
]


def scalar_grad_output(inputs) -> torch.Tensor:
    return (1 + inputs.rand(1)).reshape(()).float()


def with_grads(function, inputs: list[torch.Tensor], grad_output: torch.Tensor) -> tuple:
    """``function`` on float64 copies of ``inputs``: its value and the gradients."""
    leaves = [x.double().requires_grad_() for x in inputs]
    output = function(*leaves)
    output.backward(grad_output.double())
    return output.detach(), [leaf.grad for leaf in leaves]


def check_with_grads(check, got: dict, expected: tuple, names: list[str]) -> None:
    """The student's value and gradients (``student.f.with_grads``) against ``with_grads``."""
    value, grads = expected
    check.close(got["value"], value)
    if not isinstance(got["grads"], list):
        check.fail(f"gradient: {got['grads'] or 'none were computed'}")
    for name, grad, expected_grad in zip(names, got["grads"], grads, strict=True):
        check.close(grad, expected_grad, f"gradient with respect to {name}")


def shape_ids(prefix: str):
    return lambda shape: f"{prefix} {shape}"


# --------------------------------------------------------------------------- Gram matrix

GRAM_SHAPES = [(1, 3, 5, 4), (2, 4, 3, 3), (3, 2, 6, 1), (1, 8, 7, 9), (4, 1, 2, 2)]


@pytest.mark.parametrize("shape", GRAM_SHAPES, ids=shape_ids("features"))
def test_gram_values(student, check, inputs, reference, shape):
    features = inputs.randn(*shape).float()
    expected = reference(lambda: ref.gram_matrix(features.double()))
    check.close(student.gram_matrix(features), expected)


@pytest.mark.parametrize("shape", GRAM_SHAPES[:3], ids=shape_ids("gradient, features"))
def test_gram_gradient(student, check, inputs, reference, shape):
    features = inputs.randn(*shape).float()
    side = shape[0] * shape[1]
    grad_output = inputs.randn(side, side).float()
    expected = reference(lambda: with_grads(ref.gram_matrix, [features], grad_output))
    got = student.gram_matrix.with_grads(features, wrt=(0,), grad_output=grad_output)
    check_with_grads(check, got, expected, ["the features"])


# --------------------------------------------------------------------------- content loss

CONTENT_SHAPES = [(1, 4, 5, 5), (2, 3, 4, 6), (3, 1, 1, 7)]


@pytest.mark.parametrize("shape", CONTENT_SHAPES, ids=shape_ids("features"))
def test_content_values(student, check, inputs, reference, shape):
    generated, target = inputs.randn(*shape).float(), inputs.randn(*shape).float()
    expected = reference(lambda: ref.content_loss(generated.double(), target.double()))
    check.close(student.content_loss(generated, target), expected)


@pytest.mark.parametrize("shape", CONTENT_SHAPES[:2], ids=shape_ids("gradients, features"))
def test_content_gradient(student, check, inputs, reference, shape):
    generated, target = inputs.randn(*shape).float(), inputs.randn(*shape).float()
    grad_output = scalar_grad_output(inputs)
    # Only the generated features: detaching the target, as the PyTorch tutorial does, is fine.
    expected = reference(
        lambda: with_grads(lambda g: ref.content_loss(g, target.double()), [generated], grad_output)
    )
    got = student.content_loss.with_grads(generated, target, wrt=(0,), grad_output=grad_output)
    check_with_grads(check, got, expected, ["the generated features"])


# --------------------------------------------------------------------------- style loss

STYLE_SETTINGS = [
    (1, [(4, 6, 6)], [1.0]),
    (1, [(4, 8, 8), (6, 4, 4), (8, 2, 2)], [0.2, 1.0, 3.0]),
    (2, [(3, 5, 5), (5, 3, 2)], [0.5, 0.25]),
]


@pytest.mark.parametrize(
    "batch, layer_shapes, weights",
    STYLE_SETTINGS,
    ids=[f"batch {b}, {len(s)} layer(s), weights {w}" for b, s, w in STYLE_SETTINGS],
)
def test_style_values(student, check, inputs, reference, batch, layer_shapes, weights):
    features = [inputs.randn(batch, *shape).float() for shape in layer_shapes]
    targets = [ref.gram_matrix(inputs.randn(batch, *shape)).float() for shape in layer_shapes]
    expected = reference(
        lambda: ref.style_loss(
            [f.double() for f in features], [t.double() for t in targets], weights
        )
    )
    check.close(student.style_loss(features, targets, weights), expected)


# --------------------------------------------------------------------------- total variation

TV_SHAPES = [(1, 3, 6, 5), (2, 1, 4, 4), (3, 2, 2, 5), (1, 3, 7, 2)]


@pytest.mark.parametrize("shape", TV_SHAPES, ids=shape_ids("image"))
def test_tv_values(student, check, inputs, reference, shape):
    image = inputs.rand(*shape).float()
    expected = reference(lambda: ref.total_variation_loss(image.double()))
    check.close(student.total_variation_loss(image), expected)


@pytest.mark.parametrize("shape", TV_SHAPES[:2], ids=shape_ids("gradient, image"))
def test_tv_gradient(student, check, inputs, reference, shape):
    image, grad_output = inputs.rand(*shape).float(), scalar_grad_output(inputs)
    expected = reference(lambda: with_grads(ref.total_variation_loss, [image], grad_output))
    got = student.total_variation_loss.with_grads(image, wrt=(0,), grad_output=grad_output)
    check_with_grads(check, got, expected, ["the image"])


# --------------------------------------------------------------------------- network-based parts


def sandbox_model(student, spec: dict):
    """The spec's network, built in the sandbox by the shipped cnnkit, on the grading device."""
    net = student.lib("cnnkit").build_model(spec)
    net.to(student.device)
    return net


def check_features(student, check, inputs, reference, batch: int, layers: list[int]) -> None:
    spec, x = inputs.model_spec(TINY_VGG), inputs.rand(batch, 3, 8, 8)

    def expected():
        with torch.no_grad():
            return ref.extract_features(trusted_model(spec), x, layers)

    expected = reference(expected)
    check.close(student.extract_features(sandbox_model(student, spec), x, layers), expected)


@pytest.mark.parametrize(
    "batch, layers",
    [(1, [1, 3, 6]), (2, [9, 0, 4]), (1, [5])],
    ids=lambda value: f"batch {value}" if isinstance(value, int) else f"layers {value}",
)
def test_features_values(student, check, inputs, reference, batch, layers):
    check_features(student, check, inputs, reference, batch, layers)


@pytest.mark.parametrize(
    "batch, layers",
    [(2, [2, 3]), (1, [2, 8])],  # layer 3 is an in-place ReLU on layer 2's output
    ids=lambda value: f"batch {value}" if isinstance(value, int) else f"layers {value}",
)
def test_features_in_place(student, check, inputs, reference, batch, layers):
    check_features(student, check, inputs, reference, batch, layers)


STYLE_LAYERS = [1, 6, 9]
CONTENT_LAYER = 6


def loss_inputs(inputs, batch: int, train: bool = False, start: bool = False) -> tuple:
    """A seeded network spec, content and style images, and the generated image
    (uniform in [0, 1], or in [0.3, 0.7] as the ``start`` of a step)."""
    spec = inputs.model_spec(TINY_VGG, train=train)
    content = inputs.rand(batch, 3, 8, 8)
    style = inputs.rand(batch, 3, 8, 8).round()  # black and white: Gram matrices unlike the image's
    image = inputs.rand(batch, 3, 8, 8)
    return spec, content, style, 0.3 + 0.4 * image if start else image


def loss_kwargs(model, content: torch.Tensor, style: torch.Tensor, **weights) -> dict:
    """The loss's keyword arguments: targets for the ReLU layers 1 and 6 and the last layer."""
    with torch.no_grad():
        return {
            "content_target": ref.extract_features(model, content, [CONTENT_LAYER])[0],
            "style_grams": [
                ref.gram_matrix(f) for f in ref.extract_features(model, style, STYLE_LAYERS)
            ],
            "content_layer": CONTENT_LAYER,
            "style_layers": STYLE_LAYERS,
            "style_weights": [0.5, 1.0, 2.0],
            **weights,
        }


WEIGHTINGS = [
    {"content_weight": 1.0, "style_weight": 0.0, "tv_weight": 0.0},
    {"content_weight": 0.0, "style_weight": 1e3, "tv_weight": 0.0},
    {"content_weight": 0.0, "style_weight": 0.0, "tv_weight": 0.5},
    {"content_weight": 2.0, "style_weight": 1e2, "tv_weight": 0.1},
]
LOSS_CASES = [(1, w) for w in WEIGHTINGS] + [(2, WEIGHTINGS[-1])]


@pytest.mark.parametrize(
    "batch, weights",
    LOSS_CASES,
    ids=[f"batch {b}, " + ", ".join(f"{k}={v:g}" for k, v in w.items()) for b, w in LOSS_CASES],
)
def test_transfer_loss_values(student, check, inputs, reference, batch, weights):
    spec, content, style, image = loss_inputs(inputs, batch)

    def expected():
        model = trusted_model(spec)
        kwargs = loss_kwargs(model, content, style, **weights)
        return kwargs, ref.style_transfer_loss(model, image, **kwargs).detach()

    kwargs, expected = reference(expected)
    got = student.style_transfer_loss(sandbox_model(student, spec), image, **kwargs)
    check.close(got, expected)


STEP_WEIGHTS = {"content_weight": 1.0, "style_weight": 1e2, "tv_weight": 0.1}


def step(student, check, inputs, reference, reach: float, train: bool = False) -> tuple:
    """One student step from a start in [0.3, 0.7], with the lr that moves the fastest pixel
    by ``reach`` before clamping, checked against the reference; returns the reference step,
    the spec and the sandbox network."""
    spec, content, style, image = loss_inputs(inputs, 1, train=train, start=True)

    def expected():
        model = trusted_model(spec)
        kwargs = loss_kwargs(model, content, style, **STEP_WEIGHTS)
        leaf = image.clone().requires_grad_()
        (grad,) = torch.autograd.grad(ref.style_transfer_loss(model, leaf, **kwargs), leaf)
        lr = reach / float(grad.abs().max())
        return kwargs, lr, ref.style_transfer_step(model, image, lr, **kwargs)

    kwargs, lr, expected = reference(expected)
    net = sandbox_model(student, spec)
    check.close(student.style_transfer_step(net, image, lr, **kwargs), expected)
    return expected, spec, net


def reach_id(reach: float) -> str:
    return f"all three loss terms, lr moving the fastest pixel by {reach:g}"


# reach < 0.3 never leaves [0, 1]: no clamping needed
@pytest.mark.parametrize("reach", [0.05, 0.15], ids=reach_id)
def test_step_values(student, check, inputs, reference, reach):
    step(student, check, inputs, reference, reach)


# reach > 0.7 always clamps the fastest pixel
@pytest.mark.parametrize("reach", [0.8, 1.2], ids=reach_id)
def test_step_clamped(student, check, inputs, reference, reach):
    expected, _, _ = step(student, check, inputs, reference, reach)
    assert int(((expected == 0) | (expected == 1)).sum()) > 0, "a large step must clamp"


@pytest.mark.parametrize(
    "train",
    [False, True],
    ids=lambda train: (
        f"network in {'train' if train else 'eval'} mode, parameters requiring grad, "
        "lr moving the fastest pixel by 0.1"
    ),
)
def test_step_model_untouched(student, check, inputs, reference, train):
    _, spec, net = step(student, check, inputs, reference, 0.1, train)  # no clamping needed
    report = student.lib("cnnkit").model_report(net)
    check.that(
        not any(report["grads"]),
        "the network's parameters have gradients after the step "
        "(use torch.autograd.grad, not backward)",
    )
    state = report["state"]
    check.that(
        state.keys() == spec["state"].keys()
        and all(torch.equal(state[k].cpu(), v) for k, v in spec["state"].items()),
        "the network's weights or buffers changed",
    )
    check.that(report["training"] is train, "the network's train/eval mode changed")
