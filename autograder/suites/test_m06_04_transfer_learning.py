"""Hidden tests for m06_04_transfer_learning: structural checks on torchvision models.

Every model is built with ``weights=None`` (or from a seeded weights file, below) inside
the sandbox, where it stays: the student's functions change it there, and the judge reads
back plain data only (parameter names, shapes, ``requires_grad`` flags and ``id``s, module
types and train/eval modes), through standard-library calls on handles (``map``,
``operator.attrgetter``), so no tensor of a large model crosses. The oracle is
torchvision's own structure (``get_model(arch, num_classes=K)``) and the rules in
``solutions/transfer.py``; no check depends on pretrained values.

Loading is tested offline. With ``torch.hub`` pointed at an empty folder the loader must
fall back to random initialisation. With a seeded state dict saved under the file name of
the DEFAULT weights (torch.hub checks a file's hash only when it downloads it, so a cached
file is loaded as it is), the loader must load exactly those values: proof that it asked
for the DEFAULT member of the architecture's weight enum.

Parameter groups stay in the sandbox too (a one-item ``deque`` holds the student's return
value); the judge reads each group's parameter names and learning rate.
"""

from __future__ import annotations

import posixpath
from urllib.parse import urlparse

import pytest
import torch
from torchvision import models

from autograder.fixtures import HubFolder, name_difference
from solutions import transfer as ref

# --------------------------------------------------------------------------- sandbox views


class View:
    """Plain-data views of objects that stay in the sandbox, via builtins there."""

    def __init__(self, student) -> None:
        self.student = student
        self.py = student.lib("builtins")
        self.op = student.lib("operator")
        self.tv = student.lib("torchvision.models")

    def collect(self, getter, iterable) -> list:
        return self.py.list(self.py.map(getter, iterable))

    def build(self, arch: str, **options):
        """torchvision's ``arch`` with random weights, built in the sandbox (a handle)."""
        return self.tv.get_model(arch, weights=None, **options)

    def parameter_names(self, net) -> list[str]:
        return self.collect(self.op.itemgetter(0), net.named_parameters())

    def parameter_shapes(self, net) -> list[list[int]]:
        shapes = self.py.map(self.op.attrgetter("shape"), net.parameters())
        return self.py.list(self.py.map(self.py.get("list"), shapes))

    def parameter_ids(self, net) -> list[int]:
        return self.collect(self.py.get("id"), net.parameters())

    def requires_grad(self, net) -> list[bool]:
        return self.collect(self.op.attrgetter("requires_grad"), net.parameters())

    def dtypes(self, net) -> list[str]:
        return self.collect(
            self.py.get("str"), self.py.map(self.op.attrgetter("dtype"), net.parameters())
        )

    def devices(self, net) -> list[str]:
        found = self.py.map(self.op.attrgetter("device.type"), net.parameters())
        return self.py.list(found)

    def module_names(self, net) -> list[str]:
        return self.collect(self.op.itemgetter(0), net.named_modules())

    def module_types(self, net) -> list[str]:
        getter = self.op.attrgetter("__class__.__module__", "__class__.__qualname__")
        return [".".join(pair) for pair in self.collect(getter, net.modules())]

    def modes(self, net) -> list[bool]:
        return self.collect(self.op.attrgetter("training"), net.modules())

    def kept_call(self, function: str, *args):
        """Call the student's ``function`` in the sandbox and keep the result there: a
        handle to a one-item deque that holds it."""
        calls = self.py.map(self.student.get(function), *[[arg] for arg in args])
        return self.student.lib("collections").deque(calls)

    def group_views(self, box) -> tuple[list[list[str]], list]:
        """``(names per group, lr per group)`` of the parameter groups in ``box``."""
        chain = self.student.lib("itertools").get("chain")  # the class, as a handle
        lrs = self.collect(self.op.itemgetter("lr"), chain.from_iterable(box))
        params = self.py.map(self.op.itemgetter("params"), chain.from_iterable(box))
        firsts = self.py.map(
            self.py.get("map"), self.student.lib("itertools").repeat(self.op.itemgetter(0)), params
        )
        names = self.collect(self.py.get("list"), firsts)
        return names, lrs


def reference_model(arch: str, **options) -> torch.nn.Module:
    return models.get_model(arch, weights=None, **options)


def reference_names(model: torch.nn.Module) -> list[str]:
    return [name for name, _ in model.named_parameters()]


def batchnorm(type_name: str) -> bool:
    return type_name.startswith("torch.nn.modules.batchnorm.")


# --------------------------------------------------------------------------- loading

SMALL_FILES = ["mobilenet_v2", "mobilenet_v3_small"]  # weights files under 16 MB


def weights_file(weights) -> str:
    return posixpath.basename(urlparse(weights.url).path)


def seeded_state(inputs, arch: str) -> dict[str, torch.Tensor]:
    """A state dict for ``arch`` with seeded values (distinct from any initialisation)."""
    template = reference_model(arch).state_dict()
    return {
        name: inputs.parameter(name, value.shape).float()
        if value.is_floating_point()
        else value.clone()
        for name, value in template.items()
    }


def crop_size(weights) -> int:
    return int(weights.transforms().crop_size[0])


LOADED = [
    ("mobilenet_v2", ("DEFAULT",)),
    ("mobilenet_v2", ("IMAGENET1K_V1", "DEFAULT")),
    ("mobilenet_v3_small", ("DEFAULT",)),
]


@pytest.mark.parametrize(
    "arch, cached",
    LOADED,
    ids=[
        f"{arch}, cached weights files: " + " and ".join(f"{member}" for member in cached)
        for arch, cached in LOADED
    ],
)
def test_load_cached_weights(student, check, inputs, reference, arch, cached):
    family = models.get_model_weights(arch)
    states = {member: seeded_state(inputs, arch) for member in cached}
    expected_crop = reference(lambda: crop_size(family.DEFAULT))
    torch_ = student.lib("torch")
    with HubFolder(student) as folder:
        for member, state in states.items():
            path = posixpath.join(folder, "checkpoints", weights_file(getattr(family, member)))
            torch_.save(state, path)
        result = student.load_pretrained(arch)
        if type(result) is not tuple or len(result) != 2:
            check.fail("load_pretrained should return a tuple (model, crop size)")
        net, crop = result
        state = net.state_dict()
    check.equal(crop, expected_crop, "crop size")
    if type(state) is not dict or list(state) != list(states["DEFAULT"]):
        check.fail(f"the model is not torchvision's {arch} (different state-dict names)")
    for name, value in states["DEFAULT"].items():
        got = state[name]
        if type(got) is not torch.Tensor or not torch.equal(got.cpu().to(value.dtype), value):
            check.fail(
                f"{name} does not hold the values of the cached DEFAULT weights file "
                f"({weights_file(family.DEFAULT)}): were the weights passed to the builder?"
            )


FALLBACK = ["resnet18", "efficientnet_b1", "mobilenet_v3_small"]


@pytest.mark.parametrize(
    "arch", FALLBACK, ids=[f"{arch}, no weights file, no download" for arch in FALLBACK]
)
def test_load_fallback(student, check, reference, arch):
    family = models.get_model_weights(arch)
    expected_crop = reference(lambda: crop_size(family.DEFAULT))
    template = reference(
        lambda: [(n, list(p.shape)) for n, p in reference_model(arch).named_parameters()]
    )
    view = View(student)
    with HubFolder(student):
        result = student.load_pretrained(arch)
    if type(result) is not tuple or len(result) != 2:
        check.fail("load_pretrained should return a tuple (model, crop size)")
    net, crop = result
    check.equal(crop, expected_crop, "crop size (from the DEFAULT weights' transforms)")
    if type(net) is torch.Tensor or not hasattr(net, "named_parameters"):
        check.fail("the first item returned is not a model")
    names, shapes = view.parameter_names(net), view.parameter_shapes(net)
    if list(zip(names, shapes)) != [tuple(pair) for pair in template]:
        check.fail(
            f"the model is not torchvision's {arch}: {name_difference(names, [n for n, _ in template])}"
        )


# --------------------------------------------------------------------------- head

HEADS = [
    ("resnet18", 10, "fc"),
    ("resnet18", 3, "fc"),
    ("mobilenet_v3_small", 10, "classifier.3"),
    ("mobilenet_v2", 7, "classifier.1"),
    ("efficientnet_b0", 5, "classifier.1"),
]


@pytest.mark.parametrize(
    "arch, k, where", HEADS, ids=[f"{a}, {k} classes (head: {w})" for a, k, w in HEADS]
)
def test_head_structure(student, check, reference, arch, k, where):
    expected = reference(
        lambda: [
            (n, list(p.shape)) for n, p in reference_model(arch, num_classes=k).named_parameters()
        ]
    )
    in_features = reference(lambda: ref.head(reference_model(arch)).in_features)
    view = View(student)
    net = view.build(arch)
    before = dict(zip(view.parameter_names(net), view.parameter_ids(net)))
    alive = student.lib("collections").deque(net.parameters())  # no id is reused meanwhile
    got = student.replace_head(net, k)
    check.equal(got, in_features, "the returned in_features")
    names, shapes = view.parameter_names(net), view.parameter_shapes(net)
    if list(zip(names, shapes)) != [tuple(pair) for pair in expected]:
        expected_names = [n for n, _ in expected]
        if names == expected_names:
            check.fail(f"parameter shapes differ from torchvision's {arch}(num_classes={k})")
        check.fail(
            f"the model differs from torchvision's {arch}(num_classes={k}): "
            f"{name_difference(names, expected_names)}"
        )
    modules = dict(zip(view.module_names(net), view.module_types(net)))
    check.equal(modules.get(where), "torch.nn.modules.linear.Linear", f"the type of {where}")
    after = dict(zip(names, view.parameter_ids(net)))
    head = [n for n in names if n.startswith(where + ".")]
    if any(after[n] != before[n] for n in names if n not in head):
        check.fail("parameters outside the head were replaced: change only the head, in place")
    if any(after[n] == before.get(n) for n in head):
        check.fail("the head still holds the old layer's parameters")
    del alive


HEAD_DTYPES = [("resnet18", 10), ("mobilenet_v3_small", 4), ("efficientnet_b0", 6)]


@pytest.mark.parametrize(
    "arch, k",
    HEAD_DTYPES,
    ids=[f"{a}, {k} classes, float64 model on the grading device" for a, k in HEAD_DTYPES],
)
def test_head_dtype_device(student, check, reference, arch, k):
    view = View(student)
    prefix = reference(lambda: ref.head_name(reference_model(arch))) + "."
    net = view.build(arch).double().to(student.device).requires_grad_(False)
    student.replace_head(net, k)
    dtypes, devices = set(view.dtypes(net)), set(view.devices(net))
    check.that(
        dtypes == {"torch.float64"},
        f"parameter dtypes {sorted(dtypes)}: build the head in the model's dtype",
    )
    check.that(
        devices == {student.device},
        f"parameters on {sorted(devices)}: build the head on the model's device",
    )
    names, flags = view.parameter_names(net), view.requires_grad(net)
    check.that(
        all(flag for name, flag in zip(names, flags) if name.startswith(prefix)),
        "the new head's parameters should require grad",
    )


# --------------------------------------------------------------------------- freezing

FREEZE = [
    ("resnet18", 10, False),
    ("mobilenet_v3_small", 10, False),
    ("efficientnet_b0", 4, False),
    ("resnet18", 5, True),
]


def freeze_id(arch, k, frozen):
    return f"{arch}, {k} classes" + (", every parameter frozen beforehand" if frozen else "")


@pytest.mark.parametrize("arch, k, frozen", FREEZE, ids=[freeze_id(*case) for case in FREEZE])
def test_freeze_requires_grad(student, check, reference, arch, k, frozen):
    expected_names = reference(
        lambda: ref.head_parameter_names(reference_model(arch, num_classes=k))
    )
    count = reference(
        lambda: sum(
            p.numel()
            for n, p in reference_model(arch, num_classes=k).named_parameters()
            if n in set(expected_names)
        )
    )
    view = View(student)
    net = view.build(arch, num_classes=k)
    if frozen:
        net.requires_grad_(False)
    got = student.freeze_backbone(net)
    names, flags = view.parameter_names(net), view.requires_grad(net)
    trainable = [n for n, flag in zip(names, flags) if flag]
    if trainable != expected_names:
        check.fail(f"trainable parameters: {name_difference(trainable, expected_names)}")
    check.equal(got, count, "the returned number of trainable parameter elements")


FREEZE_MODES = [("resnet18", True), ("mobilenet_v3_small", True), ("efficientnet_b0", False)]


@pytest.mark.parametrize(
    "arch, train",
    FREEZE_MODES,
    ids=[f"{a}, handed over in {'train' if t else 'eval'} mode" for a, t in FREEZE_MODES],
)
def test_freeze_batchnorm_eval(student, check, arch, train):
    view = View(student)
    net = view.build(arch, num_classes=10).train(train)
    student.freeze_backbone(net)
    types, modes = view.module_types(net), view.modes(net)
    if any(mode for kind, mode in zip(types, modes) if batchnorm(kind)):
        check.fail("a BatchNorm layer of the frozen backbone is still in train mode")
    if any(mode != train for kind, mode in zip(types, modes) if not batchnorm(kind)):
        check.fail(
            f"modules other than BatchNorm left {'train' if train else 'eval'} mode: "
            "switch only the BatchNorm layers"
        )


TRAIN_MODE = [("resnet18", True), ("mobilenet_v3_small", True), ("resnet18", False)]


@pytest.mark.parametrize(
    "arch, frozen",
    TRAIN_MODE,
    ids=[f"{a}, {'after freeze_backbone' if f else 'nothing frozen'}" for a, f in TRAIN_MODE],
)
def test_freeze_train_mode(student, check, reference, arch, frozen):
    view = View(student)
    head = reference(lambda: ref.head_name(reference_model(arch, num_classes=10)))
    net = view.build(arch, num_classes=10).eval()
    if frozen:  # the backbone frozen as freeze_backbone leaves it
        net.requires_grad_(False)
        net.get_submodule(head).requires_grad_(True)
    student.train_mode(net)
    types, modes = view.module_types(net), view.modes(net)
    for kind, mode in zip(types, modes):
        if batchnorm(kind) and mode == frozen:
            state = "train" if mode else "eval"
            check.fail(
                f"after train_mode a BatchNorm layer with {'frozen' if frozen else 'trainable'} "
                f"parameters is in {state} mode"
            )
        if not batchnorm(kind) and not mode:
            check.fail("after train_mode a module other than BatchNorm is in eval mode")


# --------------------------------------------------------------------------- parameter groups

GROUP_MODELS = ["resnet18", "mobilenet_v3_small", "efficientnet_b0"]


@pytest.mark.parametrize("arch", GROUP_MODELS, ids=[f"{a}, 10 classes" for a in GROUP_MODELS])
def test_groups_partition(student, check, reference, arch):
    blocks = reference(lambda: ref.parameter_blocks(reference_model(arch, num_classes=10)))
    view = View(student)
    net = view.build(arch, num_classes=10)
    names, _ = view.group_views(view.kept_call("discriminative_param_groups", net, 1e-3, 0.5))
    flat = [name for group in names for name in group]
    everything = [name for block in blocks for name in block]
    if sorted(flat) != sorted(everything):
        if len(flat) != len(set(flat)):
            check.fail("a parameter is in more than one group")
        check.fail(
            f"the groups do not hold every parameter once: {name_difference(flat, everything)}"
        )
    if len(names) != len(blocks):
        check.fail(f"{len(names)} groups, expected {len(blocks)} (one per block)")
    for index, (got, expected) in enumerate(zip(names, blocks)):
        if got != expected:
            check.fail(f"group {index}: {name_difference(got, expected)}")


GROUP_RATES = [
    ("resnet18", 1e-3, 0.5),
    ("resnet18", 0.01, 0.3),
    ("mobilenet_v3_small", 3e-4, 0.7),
    ("efficientnet_b0", 2e-3, 1.0),
]


@pytest.mark.parametrize(
    "arch, base_lr, decay",
    GROUP_RATES,
    ids=[f"{a}, base_lr={b:g}, decay={d:g}" for a, b, d in GROUP_RATES],
)
def test_groups_learning_rates(student, check, reference, arch, base_lr, decay):
    blocks = reference(lambda: len(ref.parameter_blocks(reference_model(arch, num_classes=10))))
    view = View(student)
    net = view.build(arch, num_classes=10)
    _, lrs = view.group_views(view.kept_call("discriminative_param_groups", net, base_lr, decay))
    check.close(lrs, ref.group_learning_rates(blocks, base_lr, decay), "learning rates per group")


# --------------------------------------------------------------------------- progressive resizing

SCHEDULES = [  # (epochs, min_size, max_size, stages, step)
    (8, 32, 64, 4, 8),
    (10, 64, 224, 4, 32),
    (7, 96, 160, 3, 16),
    (12, 128, 224, 5, 8),
    (5, 32, 96, 5, 32),
]


@pytest.mark.parametrize(
    "epochs, low, high, stages, step",
    SCHEDULES,
    ids=[f"{e} epochs, {lo} to {hi} px, {s} stages, step {st}" for e, lo, hi, s, st in SCHEDULES],
)
def test_resize_schedule(student, check, epochs, low, high, stages, step):
    got = [
        student.progressive_size(epoch, epochs, low, high, stages, step) for epoch in range(epochs)
    ]
    expected = [ref.progressive_size(e, epochs, low, high, stages, step) for e in range(epochs)]
    check.close(got, expected, "sizes per epoch")


RESIZE_EDGES = [  # (label, epochs, min_size, max_size, stages, step)
    ("one stage: always max_size", 4, 32, 64, 1, 8),
    ("as many stages as epochs", 5, 32, 96, 5, 16),
    ("two stages, odd epoch count", 5, 64, 128, 2, 32),
    ("min_size equals max_size", 3, 64, 64, 3, 8),
    ("one epoch", 1, 32, 64, 1, 8),
]


@pytest.mark.parametrize(
    "label, epochs, low, high, stages, step", RESIZE_EDGES, ids=[case[0] for case in RESIZE_EDGES]
)
def test_resize_edge(student, check, label, epochs, low, high, stages, step):
    got = [
        student.progressive_size(epoch, epochs, low, high, stages, step) for epoch in range(epochs)
    ]
    expected = [ref.progressive_size(e, epochs, low, high, stages, step) for e in range(epochs)]
    check.close(got, expected, "sizes per epoch")
    got_default = student.progressive_size(0, 8, 32, 64)
    check.close(got_default, ref.progressive_size(0, 8, 32, 64), "defaults stages=4, step=8")


# --------------------------------------------------------------------------- normalisation

NORMALIZE = [(2, 3, 8, 8), (1, 3, 5, 7), (3, 6, 4)]


@pytest.mark.parametrize("shape", NORMALIZE, ids=[f"float32 images {s}" for s in NORMALIZE])
def test_normalize_values(student, check, inputs, reference, shape):
    x = inputs.rand(*shape)
    expected = reference(lambda: ref.imagenet_normalize(x))
    got = student.imagenet_normalize(x.float())
    check.close(got, expected)


DTYPES = [((2, 3, 6, 5), torch.float64), ((3, 4, 4), torch.float64), ((1, 3, 2, 2), torch.float32)]


@pytest.mark.parametrize(
    "shape, dtype", DTYPES, ids=[f"{str(d).removeprefix('torch.')} images {s}" for s, d in DTYPES]
)
def test_normalize_dtype(student, check, inputs, reference, shape, dtype):
    x = inputs.rand(*shape)
    expected = reference(lambda: ref.imagenet_normalize(x))
    got = student.imagenet_normalize(x.to(dtype))
    if type(got) is torch.Tensor and got.dtype != dtype:
        check.fail(f"the output is {got.dtype}, the input was {dtype}: keep the input's dtype")
    check.close(got, expected)
