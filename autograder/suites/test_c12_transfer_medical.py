"""Hidden tests for c12_transfer_medical (Lab 3): an EfficientNet-B0 classifier, balanced class
weights, a weighted cross-entropy, the confusion matrix, sensitivity and specificity, the
threshold for a target sensitivity, and Grad-CAM.

- ``build_classifier`` is structural: torchvision's EfficientNet-B0 built by the student in
  the sandbox, where it stays; the judge reads names, shapes, ``requires_grad`` flags and
  module modes through standard-library calls on handles. Offline with an empty torch hub
  folder, and with a seeded weights file (``cnnkit.randomize_`` then
  ``cnnkit.xray.save_weights_file``, in float16 to stay under the sandbox's file-size
  limit) under the DEFAULT file name, whose values the judge recomputes with the same
  helper; no check depends on pretrained values.
- The loss against ``F.cross_entropy(weight=...)`` in float64 on float32 inputs; weights,
  the confusion matrix, the rates and the threshold against ``solutions/medical.py``
  (cross-checked against scikit-learn by tests/test_solutions_medical.py). Random targets
  for the threshold keep ``target * positives`` at least 1e-6 from an integer, so that a
  float32 ratio and a float64 one decide alike; the exact-target check uses dyadic ratios,
  exact in both.
- Grad-CAM on small seeded float64 CNNs built in the sandbox from a spec
  (``cnnkit.build_model``) and in the judge for the reference, on float64 inputs, at the
  hooked layer's resolution (``upsample=False``) and upsampled.
"""

from __future__ import annotations

import posixpath
from urllib.parse import urlparse

import pytest
import torch
from torchvision import models

from autograder.course import load_helper
from autograder.fixtures import HubFolder, name_difference, number, trusted_model
from solutions import medical as ref

# --------------------------------------------------------------------------- sandbox views


class View:
    """Plain-data views of objects that stay in the sandbox, via builtins there."""

    def __init__(self, student) -> None:
        self.py = student.lib("builtins")
        self.op = student.lib("operator")

    def collect(self, getter, iterable) -> list:
        return self.py.list(self.py.map(getter, iterable))

    def parameter_names(self, net) -> list[str]:
        return self.collect(self.op.itemgetter(0), net.named_parameters())

    def parameter_shapes(self, net) -> list[list[int]]:
        shapes = self.py.map(self.op.attrgetter("shape"), net.parameters())
        return self.py.list(self.py.map(self.py.get("list"), shapes))

    def requires_grad(self, net) -> list[bool]:
        return self.collect(self.op.attrgetter("requires_grad"), net.parameters())

    def module_names(self, net) -> list[str]:
        return self.collect(self.op.itemgetter(0), net.named_modules())

    def module_types(self, net) -> list[str]:
        getter = self.op.attrgetter("__class__.__module__", "__class__.__qualname__")
        return [".".join(pair) for pair in self.collect(getter, net.modules())]

    def modes(self, net) -> list[bool]:
        return self.collect(self.op.attrgetter("training"), net.modules())

    def hook_count(self, module) -> int:
        """Forward, forward-pre, backward and backward-pre hooks left on ``module``."""
        names = ["_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"]
        return sum(self.py.len(module.get(name)) for name in names)


def classifier(check, result):
    """``(model handle, count)`` from ``build_classifier``'s result."""
    if type(result) is not tuple or len(result) != 2:
        check.fail("build_classifier should return a tuple (model, number of trainable parameters)")
    net, count = result
    if type(net) is torch.Tensor or net is None or isinstance(net, (int, float, str)):
        check.fail("the first item returned is not a model")
    return net, count


def reference_layout(k: int) -> list[tuple[str, list[int]]]:
    net = models.efficientnet_b0(weights=None, num_classes=k)
    return [(n, list(p.shape)) for n, p in net.named_parameters()]


HEAD = ["classifier.1.weight", "classifier.1.bias"]


def batchnorm(type_name: str) -> bool:
    return type_name.startswith("torch.nn.modules.batchnorm.")


# --------------------------------------------------------------------------- the classifier

CLASSES = [2, 3]


@pytest.mark.parametrize("k", CLASSES, ids=[f"{k} classes, empty hub cache" for k in CLASSES])
def test_classifier_structure(student, check, reference, k):
    expected = reference(lambda: reference_layout(k))
    view = View(student)
    with HubFolder(student):
        net, _ = classifier(check, student.build_classifier(k))
    names, shapes = view.parameter_names(net), view.parameter_shapes(net)
    if list(zip(names, shapes)) != [tuple(pair) for pair in expected]:
        expected_names = [n for n, _ in expected]
        if names == expected_names:
            check.fail(
                f"parameter shapes differ from torchvision's efficientnet_b0(num_classes={k})"
            )
        check.fail(
            f"the model differs from torchvision's efficientnet_b0(num_classes={k}): "
            f"{name_difference(names, expected_names)}"
        )
    modules = dict(zip(view.module_names(net), view.module_types(net)))
    check.equal(
        modules.get("classifier.1"), "torch.nn.modules.linear.Linear", "classifier.1's type"
    )


@pytest.mark.parametrize("k", CLASSES, ids=[f"{k} classes" for k in CLASSES])
def test_classifier_frozen(student, check, k):
    view = View(student)
    with HubFolder(student):
        net, count = classifier(check, student.build_classifier(k))
    names, flags = view.parameter_names(net), view.requires_grad(net)
    trainable = [n for n, flag in zip(names, flags) if flag]
    if trainable != HEAD:
        check.fail(f"trainable parameters: {name_difference(trainable, HEAD)}")
    types, modes = view.module_types(net), view.modes(net)
    if not any(batchnorm(kind) for kind in types):
        check.fail("the model has no BatchNorm layers: is it torchvision's EfficientNet-B0?")
    if any(mode for kind, mode in zip(types, modes) if batchnorm(kind)):
        check.fail("a BatchNorm layer of the frozen backbone is in train mode")
    check.equal(count, 1280 * k + k, "the returned number of trainable parameter elements")


SEED = 7
CACHED = ["features.0.0.weight", "features.4.1.block.0.0.weight", "features.8.0.weight"]
CACHED_BUFFERS = ["features.8.1.running_var", "features.3.0.block.1.1.running_mean"]


def seeded_values() -> dict[str, torch.Tensor]:
    net = load_helper().randomize_(models.efficientnet_b0(weights=None), seed=SEED)
    state = net.state_dict()
    return {name: state[name].half().float() for name in CACHED + CACHED_BUFFERS}


def weights_file(weights) -> str:
    return posixpath.basename(urlparse(weights.url).path)


def test_classifier_cached_weights(student, check, reference):
    expected = reference(seeded_values)
    kit, tv = student.lib("cnnkit"), student.lib("torchvision.models")
    with HubFolder(student) as folder:
        seeded = kit.randomize_(tv.efficientnet_b0(weights=None), seed=SEED)
        path = posixpath.join(
            folder, "checkpoints", weights_file(models.EfficientNet_B0_Weights.DEFAULT)
        )
        student.lib("cnnkit.xray").save_weights_file(seeded, path, half=True)  # under 16 MB
        del seeded
        net, _ = classifier(check, student.build_classifier(2))
    got = {name: net.get_parameter(name) for name in CACHED}
    got.update({name: net.get_buffer(name) for name in CACHED_BUFFERS})
    for name, value in expected.items():
        value_got = got[name]
        if type(value_got) is not torch.Tensor or not torch.equal(
            value_got.cpu().to(value.dtype), value
        ):
            check.fail(
                f"{name} does not hold the values of the cached DEFAULT weights file "
                f"({weights_file(models.EfficientNet_B0_Weights.DEFAULT)}): were the weights "
                "passed to the builder?"
            )
    check.equal(view_shape(net.get_parameter(HEAD[0])), [2, 1280], "the new head's weight shape")


def view_shape(value) -> list[int] | None:
    return list(value.shape) if type(value) is torch.Tensor else None


# --------------------------------------------------------------------------- class weights


def imbalanced_labels(inputs, n: int, k: int) -> torch.Tensor:
    """``n`` labels over ``k`` classes with skewed frequencies, every class present."""
    while True:
        logits = 2 * inputs.randn(k)
        probabilities = torch.softmax(logits, 0)
        labels = torch.multinomial(probabilities, n, replacement=True, generator=inputs.generator)
        if len(labels.unique()) == k:
            return labels


WEIGHTS = [(20, 2), (100, 2), (500, 2), (60, 3), (200, 5), (37, 4)]


@pytest.mark.parametrize(
    "n, k", WEIGHTS, ids=[f"{n} labels, {k} classes, imbalanced" for n, k in WEIGHTS]
)
def test_class_weights_values(student, check, inputs, reference, n, k):
    labels = imbalanced_labels(inputs, n, k)
    expected = reference(lambda: ref.balanced_class_weights(labels, k))
    check.close(student.balanced_class_weights(labels, k), expected, "weights")


def weight_edge(inputs, case: str) -> tuple[torch.Tensor, int]:
    if case == "one rare class among 99":
        labels = torch.tensor([1] * 99 + [0])
        return labels[torch.randperm(100, generator=inputs.generator)], 2
    if case == "Kermany's 1341 : 3875, sorted":
        return torch.tensor([0] * 1341 + [1] * 3875), 2
    if case == "three classes, the last first":
        return torch.tensor([2] * 5 + [0] * 2 + [1] * 9), 3
    return torch.tensor([0] * 3 + [1, 1]), 2  # a small set, for contrast with one class


WEIGHT_EDGES = [
    "one rare class among 99",
    "Kermany's 1341 : 3875, sorted",
    "three classes, the last first",
    "one class only",
]


@pytest.mark.parametrize("case", WEIGHT_EDGES)
def test_class_weights_edge_cases(student, check, inputs, reference, case):
    if case == "one class only":
        labels, k = torch.zeros(7, dtype=torch.int64), 1
        check.close(
            student.balanced_class_weights(labels, k),
            ref.balanced_class_weights(labels, k),
            "weights",
        )
    labels, k = weight_edge(inputs, case)
    expected = reference(lambda: ref.balanced_class_weights(labels, k))
    check.close(student.balanced_class_weights(labels, k), expected, "weights")


# --------------------------------------------------------------------------- weighted loss


def loss_batch(inputs, n: int, k: int, scale: float = 2.0):
    logits = (scale * inputs.randn(n, k)).float()
    targets = inputs.randint(0, k, n)
    weight = (0.2 + 3 * inputs.rand(k)).float()
    return logits, targets, weight


LOSSES = [(8, 2), (40, 2), (1, 3), (17, 5), (25, 4)]


@pytest.mark.parametrize(
    "n, k", LOSSES, ids=[f"{n} examples, {k} classes, random weights" for n, k in LOSSES]
)
def test_wce_values(student, check, inputs, reference, n, k):
    logits, targets, weight = loss_batch(inputs, n, k)
    expected = reference(lambda: ref.weighted_cross_entropy(logits, targets, weight))
    check.close(student.weighted_cross_entropy(logits, targets, weight), expected, "loss")


MEANS = [
    "weights summing to 9",
    "every target of one class",
    "weight=None",
    "gradient with respect to the logits",
]


@pytest.mark.parametrize("case", MEANS)
def test_wce_weighted_mean(student, check, inputs, reference, case):
    logits, targets, weight = loss_batch(inputs, 12, 3)
    if case == "weights summing to 9":
        weight = weight / weight.sum() * 9
    if case == "every target of one class":
        targets = torch.full_like(targets, 1)
    if case == "weight=None":
        expected = reference(lambda: ref.weighted_cross_entropy(logits, targets))
        check.close(student.weighted_cross_entropy(logits, targets), expected, "loss")
        check.close(student.weighted_cross_entropy(logits, targets, None), expected, "loss")
        return
    if case == "gradient with respect to the logits":

        def expected_pair():
            leaf = logits.double().requires_grad_()
            output = ref.weighted_cross_entropy(leaf, targets, weight)
            output.backward()
            return output.detach(), leaf.grad

        output, grad = reference(expected_pair)
        got = student.weighted_cross_entropy.with_grads(
            logits, targets, weight, wrt=(0,), grad_output=torch.tensor(1.0)
        )
        check.close(got["value"], output, "loss")
        if not isinstance(got["grads"], list):
            check.fail(f"gradient: {got['grads'] or 'none were computed'}")
        check.close(got["grads"][0], grad, "gradient with respect to the logits")
        return
    expected = reference(lambda: ref.weighted_cross_entropy(logits, targets, weight))
    check.close(student.weighted_cross_entropy(logits, targets, weight), expected, "loss")


LARGE = [(10, 2, 300.0, torch.float32), (6, 4, 800.0, torch.float64), (16, 3, 150.0, torch.float32)]


@pytest.mark.parametrize(
    "n, k, scale, dtype",
    LARGE,
    ids=[f"logits up to about {s:g}, {str(d).removeprefix('torch.')}" for _, _, s, d in LARGE],
)
def test_wce_large_logits(student, check, inputs, reference, n, k, scale, dtype):
    logits, targets, weight = loss_batch(inputs, n, k, scale)
    logits, weight = logits.to(dtype), weight.to(dtype)
    expected = reference(lambda: ref.weighted_cross_entropy(logits, targets, weight))
    check.close(student.weighted_cross_entropy(logits, targets, weight), expected, "loss")


# --------------------------------------------------------------------------- confusion matrix

CONFUSIONS = [(1, "int64"), (12, "int64"), (100, "bool"), (300, "int64"), (57, "bool")]


@pytest.mark.parametrize(
    "n, kind", CONFUSIONS, ids=[f"{n} images, {kind} predictions" for n, kind in CONFUSIONS]
)
def test_confusion_values(student, check, inputs, n, kind):
    targets = inputs.randint(0, 2, n)
    preds = torch.where(inputs.rand(n) < 0.7, targets, 1 - targets)
    preds = preds.bool() if kind == "bool" else preds
    check.equal(
        student.confusion_matrix(preds, targets), ref.confusion_matrix(preds, targets), "matrix"
    )


def confusion_edge(inputs, case: str) -> tuple[torch.Tensor, torch.Tensor]:
    targets = inputs.randint(0, 2, 20)
    if case == "no images":
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty
    if case == "every prediction right":
        return targets.clone(), targets
    if case == "every prediction wrong":
        return 1 - targets, targets
    ones = torch.ones(9, dtype=torch.int64)
    return torch.tensor([1, 0, 1, 1, 0, 1, 1, 1, 1]), ones  # only positives


CONFUSION_EDGES = [
    "no images",
    "every prediction right",
    "every prediction wrong",
    "only positives",
]


@pytest.mark.parametrize("case", CONFUSION_EDGES)
def test_confusion_edge_cases(student, check, inputs, case):
    preds, targets = confusion_edge(inputs, case)
    if case == "no images":  # and a non-empty batch, so that an all-zero matrix earns nothing
        more_preds, more_targets = confusion_edge(inputs, "every prediction wrong")
        check.equal(
            student.confusion_matrix(more_preds, more_targets),
            ref.confusion_matrix(more_preds, more_targets),
            "matrix",
        )
    check.equal(
        student.confusion_matrix(preds, targets), ref.confusion_matrix(preds, targets), "matrix"
    )


# --------------------------------------------------------------------------- rates


def rates(check, got) -> list:
    if type(got) not in (tuple, list) or len(got) != 2:
        check.fail("sensitivity_specificity should return a pair (sensitivity, specificity)")
    return [number(value) for value in got]


RATES = [(10, 0.5), (40, 0.75), (120, 0.3), (300, 0.6), (23, 0.9)]


@pytest.mark.parametrize(
    "n, positives", RATES, ids=[f"{n} images, {p:.0%} positive" for n, p in RATES]
)
def test_rates_values(student, check, inputs, n, positives):
    while True:
        targets = (inputs.rand(n) < positives).long()
        if 0 < int(targets.sum()) < n:
            break
    preds = torch.where(inputs.rand(n) < 0.75, targets, 1 - targets)
    got = rates(check, student.sensitivity_specificity(preds, targets))
    check.close(
        got, list(ref.sensitivity_specificity(preds, targets)), "(sensitivity, specificity)"
    )


UNDEFINED = ["no positives", "no negatives"]


@pytest.mark.parametrize("case", UNDEFINED)
def test_rates_undefined(student, check, inputs, case):
    label = 0 if case == "no positives" else 1
    targets = torch.full((15,), label, dtype=torch.int64)
    preds = (inputs.rand(15) < 0.4).long()
    got = rates(check, student.sensitivity_specificity(preds, targets))
    check.close(
        got, list(ref.sensitivity_specificity(preds, targets)), "(sensitivity, specificity)"
    )


# --------------------------------------------------------------------------- threshold


def scored(inputs, n: int, positives: float, target: float):
    """float32 scores that rank positives higher on average; ``target * P`` off the integers."""
    for _ in range(200):
        targets = (inputs.rand(n) < positives).long()
        count = int(targets.sum())
        product = target * count
        if count and abs(product - round(product)) > 1e-6:
            scores = torch.sigmoid(inputs.randn(n) + 1.5 * targets).float()
            return scores, targets
    raise RuntimeError("no labels with target * positives off the integers")


THRESHOLDS = [(20, 0.5, 0.9), (60, 0.75, 0.95), (100, 0.6, 0.8), (300, 0.7, 0.99), (45, 0.3, 0.5)]


@pytest.mark.parametrize(
    "n, positives, target",
    THRESHOLDS,
    ids=[f"{n} images, {p:.0%} positive, sensitivity >= {t}" for n, p, t in THRESHOLDS],
)
def test_threshold_values(student, check, inputs, n, positives, target):
    scores, targets = scored(inputs, n, positives, target)
    got = number(student.threshold_for_sensitivity(scores, targets, target))
    check.close(got, ref.threshold_for_sensitivity(scores, targets, target), "threshold")


EXACT = [(4, 0.5), (4, 0.75), (8, 0.875), (8, 0.5)]


@pytest.mark.parametrize(
    "positives, target",
    EXACT,
    ids=[f"{p} positives, sensitivity >= {t} reached exactly, tied scores" for p, t in EXACT],
)
def test_threshold_exact_target(student, check, inputs, positives, target):
    n = 3 * positives
    targets = torch.zeros(n, dtype=torch.int64)
    targets[torch.randperm(n, generator=inputs.generator)[:positives]] = 1
    scores = ((inputs.rand(n) * 10).floor() / 10 + 0.05).float()  # ties on a 0.1 grid
    got = number(student.threshold_for_sensitivity(scores, targets, target))
    check.close(got, ref.threshold_for_sensitivity(scores, targets, target), "threshold")


def threshold_edge(inputs, case: str):
    if case == "target 1":
        scores, targets = scored(inputs, 30, 0.5, 0.9)
        return scores, targets, 1.0
    if case == "one positive":
        targets = torch.zeros(12, dtype=torch.int64)
        targets[5] = 1
        return inputs.rand(12).float(), targets, 0.8
    if case == "negatives above every positive":
        targets = torch.tensor([0, 0, 0, 1, 1, 1, 0, 1])
        scores = torch.tensor([0.9, 0.85, 0.8, 0.6, 0.5, 0.3, 0.2, 0.1]) + 0.01 * inputs.rand(8)
        return scores.float(), targets, 0.7
    scores, targets = scored(inputs, 25, 0.6, 0.85)  # sorted by increasing score
    order = torch.argsort(scores)
    return scores[order], targets[order], 0.85


THRESHOLD_EDGES = [
    "target 1",
    "one positive",
    "negatives above every positive",
    "scores in increasing order",
]


@pytest.mark.parametrize("case", THRESHOLD_EDGES)
def test_threshold_edge_cases(student, check, inputs, case):
    scores, targets, target = threshold_edge(inputs, case)
    got = number(student.threshold_for_sensitivity(scores, targets, target))
    check.close(got, ref.threshold_for_sensitivity(scores, targets, target), "threshold")


# --------------------------------------------------------------------------- Grad-CAM

# (N, 3, H, W) -> 3 classes: batch norm, max pooling, global average pooling.
POOLED = [
    ["conv2d", 3, 6, 3, 1, 1],
    ["batchnorm2d", 6],
    ["relu"],
    ["maxpool2d", 2],
    ["conv2d", 6, 8, 3, 1, 1],
    ["relu"],
    ["adaptiveavgpool2d", 1],
    ["flatten"],
    ["linear", 8, 3],
]
# (N, 3, 8, 8) -> 4 classes: the map's gradient varies over space (a flattened head).
FLAT = [
    ["conv2d", 3, 4, 3, 1, 1],
    ["tanh"],
    ["conv2d", 4, 6, 3, 1, 1],
    ["relu"],
    ["maxpool2d", 2],
    ["flatten"],
    ["linear", 6 * 4 * 4, 4],
]
NETWORKS = {"pooled head": POOLED, "flattened head": FLAT}


def cam_case(network, layer, shape, target, label):
    return pytest.param(network, layer, shape, target, id=f"{network}, {label}, x {shape}")


def run_cam(student, inputs, reference, network, layer, shape, target, upsample, frozen=False):
    """``(student's maps, reference maps, view, the sandbox layer)``."""
    spec = inputs.model_spec(NETWORKS[network])
    x = inputs.rand(*shape)
    if target == "per image":
        classes = spec["layers"][-1][2]
        target = inputs.randint(0, classes, shape[0])

    def expected():
        net = trusted_model(spec)
        return ref.grad_cam(net, net[layer], x, target, upsample)

    maps = reference(expected)
    net = student.lib("cnnkit").build_model(spec)
    net.to(student.device)
    if frozen:
        net.requires_grad_(False)
    hooked = net[layer]
    got = student.grad_cam(net, hooked, x, target, upsample=upsample)
    return got, maps, View(student), hooked


FEATURE_MAPS = [
    cam_case("pooled head", 5, (4, 3, 12, 12), 0, "after the last ReLU, class 0"),
    cam_case("pooled head", 4, (3, 3, 10, 14), 2, "the last convolution before its ReLU, class 2"),
    cam_case("pooled head", 3, (2, 3, 12, 12), 1, "the first block after max pooling, class 1"),
    cam_case("flattened head", 2, (3, 3, 8, 8), 1, "the last convolution, class 1"),
    cam_case("flattened head", 3, (2, 3, 8, 8), 3, "after the ReLU, class 3"),
]


@pytest.mark.parametrize("network, layer, shape, target", FEATURE_MAPS)
def test_cam_feature_map(student, check, inputs, reference, network, layer, shape, target):
    got, maps, _, _ = run_cam(
        student, inputs, reference, network, layer, shape, target, upsample=False
    )
    check.close(got, maps, "map at the layer's resolution")


PER_IMAGE = [
    cam_case("pooled head", 5, (5, 3, 12, 12), "per image", "after the last ReLU"),
    cam_case("flattened head", 2, (4, 3, 8, 8), "per image", "the last convolution"),
]


@pytest.mark.parametrize("network, layer, shape, target", PER_IMAGE)
def test_cam_per_image_targets(student, check, inputs, reference, network, layer, shape, target):
    got, maps, _, _ = run_cam(
        student, inputs, reference, network, layer, shape, target, upsample=False
    )
    check.close(got, maps, "maps for a tensor of target classes")


UPSAMPLED = [
    cam_case("pooled head", 5, (3, 3, 12, 12), 1, "after the last ReLU (6 x 6 to 12 x 12)"),
    cam_case("pooled head", 5, (2, 3, 10, 18), 0, "non-square (5 x 9 to 10 x 18)"),
    cam_case("pooled head", 4, (2, 3, 13, 11), 2, "odd sizes (6 x 5 to 13 x 11)"),
    cam_case("flattened head", 3, (2, 3, 8, 8), 0, "after the ReLU (8 x 8, no change of size)"),
]


@pytest.mark.parametrize("network, layer, shape, target", UPSAMPLED)
def test_cam_upsampled(student, check, inputs, reference, network, layer, shape, target):
    got, maps, _, _ = run_cam(
        student, inputs, reference, network, layer, shape, target, upsample=True
    )
    check.close(got, maps, "upsampled map")


FROZEN = [
    cam_case("pooled head", 5, (3, 3, 12, 12), 2, "every parameter frozen"),
    cam_case("flattened head", 2, (2, 3, 8, 8), 1, "every parameter frozen"),
]


@pytest.mark.parametrize("network, layer, shape, target", FROZEN)
def test_cam_frozen_model(student, check, inputs, reference, network, layer, shape, target):
    got, maps, view, hooked = run_cam(
        student, inputs, reference, network, layer, shape, target, upsample=False, frozen=True
    )
    check.close(got, maps, "map of a frozen model")
    check.that(view.hook_count(hooked) == 0, "hooks are left on the layer: remove them after use")
