"""Hidden tests for c12_efficient_cifar (Lab 2): the blocks, the network, its CPU latency and
the trained weights submitted beside the notebook.

- ``DepthwiseSeparableConv`` and ``SqueezeExcite`` are read through handles: their layers
  (``named_modules``, in registration order) and tensors, randomised in the sandbox by
  ``cnnkit.randomize_``. The float64 references in ``solutions/efficient_cifar.py`` are
  computed from those tensors, so any attribute names and any container style pass.
- ``CifarNet``: logits, the blocks it is built from, its exact parameter count, and its CPU
  time per image at batch 1. The time is the submission's CPU seconds as the sandbox server
  reads them (``student.cpu_seconds()``, out of the student's reach) over single-image
  calls, divided by the reference network's CPU time measured in this process on one
  thread in the same run, times ``REFERENCE_MS``: milliseconds on the reference machine.
  The single-image outputs must equal the batched ones, so that timing sees the real work.
- The weights file: ``cnnkit.load_weights`` (``torch.load(weights_only=True)`` and a strict
  ``load_state_dict``) into a fresh ``CifarNet()`` inside the sandbox; the logits on the
  held-out set come back and the accuracy is computed here.
"""

from __future__ import annotations

import weakref

import pytest
import torch

from autograder.checks import CheckFailure
from autograder.remote import StudentError
from solutions import efficient_cifar as ref

# --------------------------------------------------------------------------- handles


def layers(module) -> list[tuple[str, str, object]]:
    """(name, short type name, handle) of every submodule, in registration order."""
    return [
        (name, handle._h_kind.rsplit(".", 1)[-1], handle) for name, handle in module.named_modules()
    ]


def conv_info(handle) -> dict:
    return {
        "weight": handle.get("weight"),
        "bias": handle.get("bias"),
        "groups": handle.get("groups"),
        "kernel": tuple(handle.get("kernel_size")),
        "stride": tuple(handle.get("stride")),
        "padding": handle.get("padding"),
        "in": handle.get("in_channels"),
        "out": handle.get("out_channels"),
    }


def bn_info(handle) -> dict:
    names = ("weight", "bias", "running_mean", "running_var")
    return {name: handle.get(name) for name in names} | {"eps": handle.get("eps")}


def randomised(student, module, seed: int):
    student.lib("cnnkit").randomize_(module, seed)
    module.eval()
    return module


# --------------------------------------------------------------------------- depthwise separable


def ds_case(c_in, c_out, stride, shape):
    label = f"{c_in} -> {c_out} channels, stride {stride}, x {shape}"
    return pytest.param(c_in, c_out, stride, shape, id=label)


DS_CASES = [
    ds_case(8, 16, 1, (2, 8, 8, 8)),
    ds_case(6, 12, 2, (1, 6, 9, 7)),
    ds_case(4, 10, 2, (3, 4, 10, 10)),
    ds_case(5, 3, 1, (2, 5, 5, 6)),
]


def out_size(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


@pytest.mark.parametrize("c_in, c_out, stride, shape", DS_CASES)
def test_ds_shapes(student, check, inputs, c_in, c_out, stride, shape):
    block = student.DepthwiseSeparableConv(c_in, c_out, stride).eval()
    got = block(inputs.randn(*shape).float())
    n, _, h, w = shape
    check.equal(list(got.shape), [n, c_out, out_size(h, stride), out_size(w, stride)], "shape")


@pytest.mark.parametrize("c_in, c_out, stride, shape", DS_CASES[:3])
def test_ds_structure(student, check, c_in, c_out, stride, shape):
    block = student.DepthwiseSeparableConv(c_in, c_out, stride)
    found = layers(block)
    convs = [conv_info(h) for _, kind, h in found if kind == "Conv2d"]
    norms = [kind for _, kind, _ in found if kind == "BatchNorm2d"]
    check.that(len(convs) == 2, f"expected 2 Conv2d layers, found {len(convs)}")
    check.that(len(norms) == 2, f"expected 2 BatchNorm2d layers, found {len(norms)}")
    depthwise, pointwise = convs
    check.that(
        depthwise["kernel"] == (3, 3) and depthwise["groups"] == c_in == depthwise["in"],
        f"the first convolution is not a 3x3 depthwise one (kernel {depthwise['kernel']}, "
        f"groups {depthwise['groups']}, {depthwise['in']} inputs; expected groups = {c_in})",
    )
    padding = depthwise["padding"]
    same = padding == "same" and stride == 1
    check.that(
        depthwise["stride"] == (stride, stride) and (same or tuple(padding) == (1, 1)),
        f"the depthwise convolution has stride {depthwise['stride']} and padding "
        f"{depthwise['padding']}; expected ({stride}, {stride}) and (1, 1)",
    )
    check.that(
        pointwise["kernel"] == (1, 1) and pointwise["groups"] == 1 and pointwise["out"] == c_out,
        f"the second convolution is not a 1x1 pointwise one to {c_out} channels "
        f"(kernel {pointwise['kernel']}, groups {pointwise['groups']}, {pointwise['out']} outputs)",
    )
    weights = depthwise["weight"].numel() + pointwise["weight"].numel()
    check.equal(weights, ref.separable_conv_weights(c_in, c_out), "convolution weight count")


@pytest.mark.parametrize("c_in, c_out, stride, shape", DS_CASES)
def test_ds_forward(student, check, inputs, c_in, c_out, stride, shape):
    block = randomised(student, student.DepthwiseSeparableConv(c_in, c_out, stride), 7)
    found = layers(block)
    convs = [h for _, kind, h in found if kind == "Conv2d"]
    norms = [h for _, kind, h in found if kind == "BatchNorm2d"]
    if len(convs) != 2 or len(norms) != 2:
        check.fail("the block needs two Conv2d and two BatchNorm2d layers to be compared")
    x = inputs.randn(*shape).float()
    depthwise, pointwise = conv_info(convs[0]), conv_info(convs[1])
    if depthwise["weight"].shape[1] != 1:
        check.fail("the first convolution is not depthwise (its weight is not (C, 1, 3, 3))")
    depthwise["stride"] = depthwise["stride"][0]
    bn1, bn2 = bn_info(norms[0]), bn_info(norms[1])
    expected = ref.separable_forward(x, depthwise, bn1, pointwise, bn2, eps=bn1["eps"])
    check.close(block(x), expected)


# --------------------------------------------------------------------------- squeeze-and-excitation


def se_case(channels, reduction, shape):
    label = f"{channels} channels, reduction {reduction}, x {shape}"
    return pytest.param(channels, reduction, shape, id=label)


SE_CASES = [
    se_case(16, 4, (2, 16, 5, 5)),
    se_case(12, 3, (1, 12, 4, 6)),
    se_case(3, 4, (2, 3, 3, 3)),
]


@pytest.mark.parametrize("channels, reduction, shape", SE_CASES)
def test_se_gate(student, check, inputs, channels, reduction, shape):
    block = randomised(student, student.SqueezeExcite(channels, reduction), 11)
    x = inputs.rand(*shape).float() + 0.5  # positive: the gate is out / x
    got = block(x)
    check.equal(list(got.shape), list(shape), "shape")
    gate = got.double() / x.double()
    per_channel = gate.flatten(2)
    spread = float((per_channel.max(-1).values - per_channel.min(-1).values).abs().max())
    check.that(spread < 1e-4, f"the gate changes across pixels (by up to {spread:.3g})")
    lowest, highest = float(gate.min()), float(gate.max())
    check.that(
        0 < lowest and highest < 1,
        f"gates range from {lowest:.4g} to {highest:.4g}, not inside (0, 1)",
    )


@pytest.mark.parametrize("channels, reduction, shape", SE_CASES)
def test_se_forward(student, check, inputs, channels, reduction, shape):
    block = randomised(student, student.SqueezeExcite(channels, reduction), 13)
    dense = [h for _, kind, h in layers(block) if kind in ("Linear", "Conv2d")]
    if len(dense) != 2:
        check.fail(f"expected two Linear (or 1x1 Conv2d) layers, found {len(dense)}")
    (w1, b1), (w2, b2) = [(h.get("weight"), h.get("bias")) for h in dense]
    x = inputs.randn(*shape).float()
    check.close(block(x), ref.excite_forward(x, w1, b1, w2, b2))


@pytest.mark.parametrize("channels, reduction, shape", SE_CASES)
def test_se_parameters(student, check, channels, reduction, shape):
    block = student.SqueezeExcite(channels, reduction)
    count = sum(p.numel() for p in block.parameters())
    check.equal(count, ref.excite_parameters(channels, reduction), "parameter count")


# --------------------------------------------------------------------------- the network


def built_from_blocks(model) -> tuple[int, int]:
    kinds = [kind for _, kind, _ in layers(model)]
    return kinds.count("DepthwiseSeparableConv"), kinds.count("SqueezeExcite")


def require_blocks(check, model) -> None:
    separable, excite = built_from_blocks(model)
    check.that(
        separable >= 2 and excite >= 1,
        f"CifarNet holds {separable} DepthwiseSeparableConv and {excite} SqueezeExcite "
        "modules; it must be built from at least two and one",
    )


def require_logits(check, inputs, model, varied: bool = True) -> None:
    """(N, 10) finite logits in eval mode, the same for an image alone as in a batch; with
    ``varied``, different for different images (in train mode: a freshly initialised deep
    network in eval mode gives almost the same logits for every image)."""
    x = inputs.randn(4, 3, 32, 32).float()
    if varied:
        model.train()
        logits = model(x)
        spread = float((logits - logits[:1]).abs().max()) if hasattr(logits, "shape") else 0.0
        check.that(spread > 1e-4, "the logits are the same for every image")
    model.eval()
    batched = model(x)
    check.equal(list(batched.shape), [4, 10], "logits shape")
    check.that(bool(torch.isfinite(batched).all()), "the logits are not all finite")
    alone = torch.cat([model(x[i : i + 1]) for i in range(2)])
    check.close(alone, batched[:2], "logits of images passed one at a time")


def test_net_logits(student, check, inputs):
    require_logits(check, inputs, student.CifarNet())


def test_net_blocks(student, check):
    require_blocks(check, student.CifarNet())


def test_net_parameters(student, check, leaderboard):
    model = student.CifarNet()
    require_blocks(check, model)
    count = sum(p.numel() for p in model.parameters())
    leaderboard("Parameters", count)
    check.that(
        0 < count < ref.PARAMETER_LIMIT,
        f"CifarNet has {count:,} parameters; the limit is under {ref.PARAMETER_LIMIT:,}",
    )


# CPU time per image of the submission, cached per running submission.
_LATENCY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
LATENCY_IMAGES = 150


def measured_latency_ms(student, check, inputs) -> float:
    session = student._session
    if session in _LATENCY and _LATENCY[session][0] == session.generation:
        return _LATENCY[session][1]
    model = student.CifarNet().eval()
    require_blocks(check, model)
    require_logits(check, inputs, model, varied=False)
    # three rounds on fresh images each: a model that memoises its answers gains nothing
    rounds = inputs.randn(3, LATENCY_IMAGES, 3, 32, 32).float()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the in-process (solution) run times on one thread too
    try:
        model(inputs.randn(1, 3, 32, 32).float())  # warm-up
        best = float("inf")
        outputs = []
        for images in rounds:
            start = student.cpu_seconds()
            outputs += [model(image[None]) for image in images]
            best = min(best, (student.cpu_seconds() - start) / len(images))
        reference = ref.reference_cpu_per_image(rounds[0])
    finally:
        torch.set_num_threads(threads)
    images = rounds.reshape(-1, 3, 32, 32)
    batched = torch.cat([model(images[i : i + 50]) for i in range(0, len(images), 50)])
    check.close(torch.cat(outputs), batched, "logits of the timed single-image calls")
    overhead = ref.call_overhead_cpu(images[0], in_process=not hasattr(session, "worker"))
    latency = max(best - overhead, 0.0) / reference * ref.REFERENCE_MS
    _LATENCY[session] = (session.generation, latency)
    return latency


@pytest.mark.parametrize("limit", [ref.LATENCY_TIERS_MS[0]], ids=["at most 20 ms"])
def test_latency_20ms(student, check, inputs, leaderboard, limit):
    latency = measured_latency_ms(student, check, inputs)
    leaderboard("Latency (ms)", latency)
    check.that(
        latency <= limit,
        f"{latency:.2f} ms per image on the reference machine; the limit is {limit:g} ms",
    )


@pytest.mark.parametrize("limit", [ref.LATENCY_TIERS_MS[1]], ids=["at most 10 ms"])
def test_latency_10ms(student, check, inputs, leaderboard, limit):
    latency = measured_latency_ms(student, check, inputs)
    leaderboard("Latency (ms)", latency)
    check.that(
        latency <= limit,
        f"{latency:.2f} ms per image on the reference machine; the limit is {limit:g} ms",
    )


# --------------------------------------------------------------------------- the trained weights

_ACCURACY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
BATCH = 100  # calls record autograd graphs: small batches keep the sandbox's memory low


def heldout_accuracy(student, check, reference, heldout_data) -> float:
    session = student._session
    if session in _ACCURACY and _ACCURACY[session][0] == session.generation:
        return _ACCURACY[session][1]
    path = student.weights()
    model = student.CifarNet()
    try:
        student.lib("cnnkit").load_weights(model, path)
    except StudentError as exc:
        raise CheckFailure(f"the weights file could not be loaded: {exc}") from None
    images, labels, _ = reference(lambda: ref.heldout_set(heldout_data))
    correct = 0
    for start in range(0, len(images), BATCH):
        logits = model(images[start : start + BATCH])
        if list(getattr(logits, "shape", [])) != [len(labels[start : start + BATCH]), 10]:
            check.fail(
                f"CifarNet returned {getattr(logits, 'shape', type(logits))}, not (N, 10) logits"
            )
        correct += int((logits.argmax(1) == labels[start : start + BATCH]).sum())
    accuracy = correct / len(labels)
    _ACCURACY[session] = (session.generation, accuracy)
    return accuracy


def accuracy_check(student, check, reference, heldout_data, leaderboard, tier: float) -> None:
    accuracy = heldout_accuracy(student, check, reference, heldout_data)
    leaderboard("Accuracy (%)", 100 * accuracy)
    check.that(
        accuracy >= tier,
        f"held-out accuracy {100 * accuracy:.2f}%; this check needs {100 * tier:g}%",
    )


def tier_id(tier: float) -> str:
    return f"held-out accuracy >= {100 * tier:g}%"


@pytest.mark.parametrize("tier", [0.50], ids=tier_id)
def test_accuracy_50(student, check, reference, heldout_data, leaderboard, tier):
    accuracy_check(student, check, reference, heldout_data, leaderboard, tier)


@pytest.mark.parametrize("tier", [0.70], ids=tier_id)
def test_accuracy_70(student, check, reference, heldout_data, leaderboard, tier):
    accuracy_check(student, check, reference, heldout_data, leaderboard, tier)


@pytest.mark.parametrize("tier", [0.80], ids=tier_id)
def test_accuracy_80(student, check, reference, heldout_data, leaderboard, tier):
    accuracy_check(student, check, reference, heldout_data, leaderboard, tier)


@pytest.mark.parametrize("tier", [0.85], ids=tier_id)
def test_accuracy_85(student, check, reference, heldout_data, leaderboard, tier):
    accuracy_check(student, check, reference, heldout_data, leaderboard, tier)


@pytest.mark.parametrize("tier", [0.90], ids=tier_id)
def test_accuracy_90(student, check, reference, heldout_data, leaderboard, tier):
    accuracy_check(student, check, reference, heldout_data, leaderboard, tier)
