"""Hidden suite for m06_08_style_transfer: seeded cases against the tutorial's conventions.

The losses get float32 inputs (what students use), with references computed in
float64 from the same values. The feature extractor, the total loss and the
optimisation step run on a small float64 network that the sandbox builds from a
spec (``model_call``), in place of VGG19, with in-place ReLUs like VGG's.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from autograder.fixtures import Fixtures, trusted_model
from autograder.suite import Case, Suite, call, grad, model_call
from solutions import style_transfer as ref

SUITE = Suite("m06_08_style_transfer")

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


def scalar_grad_output(fx: Fixtures) -> torch.Tensor:
    return (1 + fx.rand(1)).reshape(()).float()


def reference_with_grads(function, inputs: list[torch.Tensor], grad_output: torch.Tensor) -> dict:
    leaves = [x.double().requires_grad_() for x in inputs]
    output = function(*leaves)
    output.backward(grad_output.double())
    return {"value": output.detach(), "grads": [leaf.grad for leaf in leaves]}


# --------------------------------------------------------------------------- losses

GRAM_SHAPES = [(1, 3, 5, 4), (2, 4, 3, 3), (3, 2, 6, 1), (1, 8, 7, 9), (4, 1, 2, 2)]


@SUITE.check("gram_values")
def gram_values(fx: Fixtures) -> Iterator[Case]:
    for shape in GRAM_SHAPES:
        features = fx.randn(*shape).float()
        yield Case(
            f"features {shape}", call("gram_matrix", features), ref.gram_matrix(features.double())
        )


@SUITE.check("gram_gradient")
def gram_gradient(fx: Fixtures) -> Iterator[Case]:
    for shape in GRAM_SHAPES[:3]:
        features = fx.randn(*shape).float()
        side = shape[0] * shape[1]
        grad_output = fx.randn(side, side).float()
        expected = reference_with_grads(ref.gram_matrix, [features], grad_output)
        probe = grad("gram_matrix", features, requires_grad=(0,), grad_output=grad_output)
        yield Case(f"gradient, features {shape}", probe, expected)


@SUITE.check("content_values")
def content_values(fx: Fixtures) -> Iterator[Case]:
    for shape in [(1, 4, 5, 5), (2, 3, 4, 6), (3, 1, 1, 7)]:
        generated, target = fx.randn(*shape).float(), fx.randn(*shape).float()
        expected = ref.content_loss(generated.double(), target.double())
        yield Case(f"features {shape}", call("content_loss", generated, target), expected)


@SUITE.check("content_gradient")
def content_gradient(fx: Fixtures) -> Iterator[Case]:
    for shape in [(1, 4, 5, 5), (2, 3, 4, 6)]:
        inputs = [fx.randn(*shape).float(), fx.randn(*shape).float()]
        grad_output = scalar_grad_output(fx)
        expected = reference_with_grads(ref.content_loss, inputs, grad_output)
        probe = grad("content_loss", *inputs, requires_grad=(0, 1), grad_output=grad_output)
        yield Case(f"gradients, features {shape}", probe, expected)


@SUITE.check("style_values")
def style_values(fx: Fixtures) -> Iterator[Case]:
    settings = [
        (1, [(4, 6, 6)], [1.0]),
        (1, [(4, 8, 8), (6, 4, 4), (8, 2, 2)], [0.2, 1.0, 3.0]),
        (2, [(3, 5, 5), (5, 3, 2)], [0.5, 0.25]),
    ]
    for batch, layer_shapes, weights in settings:
        features = [fx.randn(batch, *shape).float() for shape in layer_shapes]
        targets = [ref.gram_matrix(fx.randn(batch, *shape)).float() for shape in layer_shapes]
        expected = ref.style_loss(
            [f.double() for f in features], [t.double() for t in targets], weights
        )
        label = f"batch {batch}, {len(layer_shapes)} layer(s), weights {weights}"
        yield Case(label, call("style_loss", features, targets, weights), expected)


TV_SHAPES = [(1, 3, 6, 5), (2, 1, 4, 4), (3, 2, 2, 5), (1, 3, 7, 2)]


@SUITE.check("tv_values")
def tv_values(fx: Fixtures) -> Iterator[Case]:
    for shape in TV_SHAPES:
        image = fx.rand(*shape).float()
        yield Case(
            f"image {shape}",
            call("total_variation_loss", image),
            ref.total_variation_loss(image.double()),
        )


@SUITE.check("tv_gradient")
def tv_gradient(fx: Fixtures) -> Iterator[Case]:
    for shape in TV_SHAPES[:2]:
        image, grad_output = fx.rand(*shape).float(), scalar_grad_output(fx)
        expected = reference_with_grads(ref.total_variation_loss, [image], grad_output)
        probe = grad("total_variation_loss", image, requires_grad=(0,), grad_output=grad_output)
        yield Case(f"gradient, image {shape}", probe, expected)


# --------------------------------------------------------------------------- network-based parts


def features_case(fx: Fixtures, batch: int, layers: list[int]) -> Case:
    spec, x = fx.model_spec(TINY_VGG), fx.rand(batch, 3, 8, 8)
    with torch.no_grad():
        expected = ref.extract_features(trusted_model(spec), x, layers)
    return Case(
        f"batch {batch}, layers {layers}", model_call("extract_features", spec, x, layers), expected
    )


@SUITE.check("features_values")
def features_values(fx: Fixtures) -> Iterator[Case]:
    yield features_case(fx, 1, [1, 3, 6])
    yield features_case(fx, 2, [9, 0, 4])
    yield features_case(fx, 1, [5])


@SUITE.check("features_in_place")
def features_in_place(fx: Fixtures) -> Iterator[Case]:
    yield features_case(fx, 2, [2, 3])  # layer 3 is an in-place ReLU on layer 2's output
    yield features_case(fx, 1, [2, 8])


def loss_setting(fx: Fixtures, batch: int = 1, **weights) -> dict:
    """Targets from seeded content and style images, for the relu layers 1 and 6 and the last layer."""
    spec = fx.model_spec(TINY_VGG)
    model = trusted_model(spec)
    content, style = fx.rand(batch, 3, 8, 8), fx.rand(batch, 3, 8, 8)
    style_layers = [1, 6, 9]
    with torch.no_grad():
        setting = {
            "content_target": ref.extract_features(model, content, [6])[0],
            "style_grams": [
                ref.gram_matrix(f) for f in ref.extract_features(model, style, style_layers)
            ],
            "content_layer": 6,
            "style_layers": style_layers,
            "style_weights": [0.5, 1.0, 2.0],
            **weights,
        }
    return {"spec": spec, "model": model, "kwargs": setting}


WEIGHTINGS = [
    {"content_weight": 1.0, "style_weight": 0.0, "tv_weight": 0.0},
    {"content_weight": 0.0, "style_weight": 1e3, "tv_weight": 0.0},
    {"content_weight": 0.0, "style_weight": 0.0, "tv_weight": 0.5},
    {"content_weight": 2.0, "style_weight": 1e2, "tv_weight": 0.1},
]


@SUITE.check("transfer_loss_values")
def transfer_loss_values(fx: Fixtures) -> Iterator[Case]:
    for batch, weights in [(1, w) for w in WEIGHTINGS] + [(2, WEIGHTINGS[-1])]:
        setting = loss_setting(fx, batch, **weights)
        image = fx.rand(batch, 3, 8, 8)
        expected = ref.style_transfer_loss(setting["model"], image, **setting["kwargs"])
        probe = model_call("style_transfer_loss", setting["spec"], image, **setting["kwargs"])
        yield Case(
            f"batch {batch}, " + ", ".join(f"{k}={v:g}" for k, v in weights.items()),
            probe,
            expected.detach(),
        )


def step_case(fx: Fixtures, lr: float) -> tuple[Case, torch.Tensor]:
    setting = loss_setting(fx, 1, content_weight=1.0, style_weight=1e2, tv_weight=0.1)
    image = 0.3 + 0.4 * fx.rand(1, 3, 8, 8)  # away from 0 and 1
    expected = ref.style_transfer_step(setting["model"], image, lr, **setting["kwargs"])
    probe = model_call("style_transfer_step", setting["spec"], image, lr, **setting["kwargs"])
    return Case(f"lr={lr:g}, all three loss terms", probe, expected), image


@SUITE.check("step_values")
def step_values(fx: Fixtures) -> Iterator[Case]:
    for lr in (2.0, 20.0):
        case, image = step_case(fx, lr)
        moved = float((case.expected - image).abs().max())
        assert 0 < moved < 0.3, "the small steps must move the image without reaching 0 or 1"
        yield case


@SUITE.check("step_clamped")
def step_clamped(fx: Fixtures) -> Iterator[Case]:
    for lr in (1e3, 1e4):
        case, _ = step_case(fx, lr)
        clamped = int(((case.expected == 0) | (case.expected == 1)).sum())
        assert clamped > 0, "the large steps must reach the clamp"
        yield case


def untouched(actual: dict, expected: dict, rtol: float, atol: float) -> str | None:
    if any(actual.get("model_grads", [True])):
        return "the network's parameters have gradients after the step (use torch.autograd.grad, not backward)"
    if actual.get("model_changed", True):
        return "the network's weights or buffers changed"
    if actual.get("model_training") is not expected["model_training"]:
        return "the network's train/eval mode changed"
    return None


@SUITE.check("step_model_untouched")
def step_model_untouched(fx: Fixtures) -> Iterator[Case]:
    for train in (False, True):
        setting = loss_setting(fx, 1, content_weight=1.0, style_weight=1e2, tv_weight=0.1)
        spec = {**setting["spec"], "train": train}
        probe = model_call(
            "style_transfer_step", spec, 0.3 + 0.4 * fx.rand(1, 3, 8, 8), 1e-2, **setting["kwargs"]
        )
        yield Case(
            f"network in {'train' if train else 'eval'} mode, parameters requiring grad",
            probe,
            {"model_training": train},
            untouched,
        )
