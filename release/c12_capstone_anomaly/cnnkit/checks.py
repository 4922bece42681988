"""The visible checks: compare values with tolerances, and the from-scratch rule."""

from __future__ import annotations

import numpy as np
import torch

# --------------------------------------------------------------------------- visible checks


def max_error(actual, expected) -> float:
    actual = (
        torch.as_tensor(np.asarray(actual) if not isinstance(actual, torch.Tensor) else actual)
        .double()
        .cpu()
    )
    expected = (
        torch.as_tensor(
            np.asarray(expected) if not isinstance(expected, torch.Tensor) else expected
        )
        .double()
        .cpu()
    )
    return float((actual - expected).abs().max()) if actual.numel() else 0.0


def check_close(
    actual, expected, name: str = "check", atol: float = 1e-4, rtol: float = 1e-4
) -> None:
    """Assert that two tensors (or arrays) agree in shape and value; print a tick when they do."""
    if isinstance(expected, torch.Tensor | np.ndarray):
        assert tuple(actual.shape) == tuple(expected.shape), (
            f"{name}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
        )
        a = (
            torch.as_tensor(np.asarray(actual) if isinstance(actual, np.ndarray) else actual)
            .double()
            .cpu()
        )
        e = (
            torch.as_tensor(np.asarray(expected) if isinstance(expected, np.ndarray) else expected)
            .double()
            .cpu()
        )
        ok = bool(torch.isfinite(a).all()) and torch.allclose(a, e, atol=atol, rtol=rtol)
        assert ok, (
            f"{name}: max abs error {max_error(a, e):.2e} (allowed {atol:.0e} + {rtol:.0e}*|expected|)"
        )
    elif isinstance(expected, float) and not isinstance(expected, bool):
        ok = isinstance(actual, int | float) and abs(actual - expected) <= atol + rtol * abs(
            expected
        )
        assert ok, (
            f"{name}: got {actual!r}, expected {expected!r} (within {atol:.0e} + {rtol:.0e}*|expected|)"
        )
    else:
        assert actual == expected, f"{name}: got {actual!r}, expected {expected!r}"
    print(f"✓ {name}")


# --------------------------------------------------------------------------- the from-scratch rule

# What each from-scratch part may not call, as the hidden grader's rubric lists it
# (tests/test_cnnkit_checks.py keeps the two in step).
FORBIDDEN = {
    "conv_and_pool": (
        "torch.nn.functional.conv1d",
        "torch.nn.functional.conv2d",
        "torch.nn.functional.conv3d",
        "torch.nn.functional.conv_transpose2d",
        "torch.conv1d",
        "torch.conv2d",
        "torch.convolution",
        "torch.nn.Conv1d",
        "torch.nn.Conv2d",
        "torch.nn.LazyConv2d",
        "torch.nn.functional.max_pool2d",
        "torch.nn.functional.avg_pool2d",
        "torch.nn.functional.adaptive_avg_pool2d",
        "torch.nn.functional.adaptive_max_pool2d",
        "torch.nn.functional.lp_pool2d",
        "torch.max_pool2d",
        "torch.avg_pool2d",
        "torch.nn.MaxPool2d",
        "torch.nn.AvgPool2d",
        "torch.nn.AdaptiveAvgPool2d",
        "scipy",
    ),
    "numpy_only": ("torch", "scipy"),
    "cross_entropy": (
        "torch.nn.functional.cross_entropy",
        "torch.nn.functional.nll_loss",
        "torch.nn.CrossEntropyLoss",
        "torch.nn.NLLLoss",
    ),
    "attacks": ("torchattacks", "foolbox", "advertorch", "cleverhans"),
    "augmentations": ("torchvision.transforms", "timm", "albumentations", "kornia"),
    "architectures": ("torchvision.models", "torchvision.ops", "timm"),
    # box operations and COCO evaluation: torchvision.ops, pycocotools, torchmetrics
    "detection": ("torchvision.models", "torchvision.ops", "timm", "pycocotools", "torchmetrics"),
    # anomaly metrics and losses: scikit-learn, scipy.stats, torchmetrics, torchvision.ops
    "anomaly": ("sklearn", "scipy", "torchmetrics", "torchvision.ops"),
    # Lab 3: metrics, class weights, Grad-CAM and the (weighted) cross-entropy are written
    "medical": (
        "sklearn",
        "torchmetrics",
        "pytorch_grad_cam",
        "captum",
        "torch.nn.functional.cross_entropy",
        "torch.nn.functional.nll_loss",
        "torch.nn.CrossEntropyLoss",
        "torch.nn.NLLLoss",
    ),
    # INT8 quantisation and pruning: PyTorch's quantisers, fake quantisation and prune utilities
    "deployment": (
        "torch.quantize_per_tensor",
        "torch.quantize_per_tensor_dynamic",
        "torch.quantize_per_channel",
        "torch.fake_quantize_per_tensor_affine",
        "torch.fake_quantize_per_channel_affine",
        "torch.ao",
        "torch.quantization",
        "torch.nn.quantized",
        "torch.nn.utils.prune",
        "torchao",
    ),
    "linear": (
        "torch.nn.functional.linear",
        "torch.nn.functional.bilinear",
        "torch.nn.Linear",
        "torch.nn.LazyLinear",
        "torch.nn.Bilinear",
    ),
}


def _program(function, forbidden=()) -> list[tuple[str, str, bool]]:
    """The notebook as the rule needs it: the imports and aliases the function's module
    holds now, and the source of every function and class defined in the notebook."""
    import inspect
    import sys
    import textwrap
    import types

    from . import rules

    home = function.__module__
    namespace = getattr(function, "__globals__", None) or vars(sys.modules[home])
    known = {}
    for pattern in forbidden:
        path = rules._resolve_path(pattern)
        if len(path) == len(pattern.split(".")):
            known[pattern] = path[-1]
    aliases, cells = [], []
    for name, value in list(namespace.items()):
        if name.startswith("__") or not name.isidentifier():
            continue
        if isinstance(value, types.ModuleType):
            aliases.append(f"import {value.__name__} as {name}")
            continue
        module = getattr(value, "__module__", None)
        qualname = getattr(value, "__qualname__", "")
        if not callable(value) or not isinstance(qualname, str):
            continue
        if module != home or (not hasattr(value, "__code__") and not isinstance(value, type)):
            path = next((p for p, obj in known.items() if obj is value), None)
            if path is not None:  # e.g. `f = F.conv2d`: named as the rubric names it
                aliases.append(f"import {path.split('.')[0]}\n{name} = {path}")
            elif isinstance(module, str) and qualname.isidentifier():
                aliases.append(f"from {module} import {qualname} as {name}")
            continue
        if getattr(value, "__name__", name) != name and namespace.get(value.__name__) is value:
            aliases.append(f"{name} = {value.__name__}")  # an alias of a notebook function
            continue
        try:
            if isinstance(value, type):
                methods = [
                    textwrap.indent(textwrap.dedent(inspect.getsource(member)), "    ")
                    for member in vars(value).values()
                    if inspect.isfunction(member)
                ]
                bases = []
                for base in value.__bases__:
                    if base is object:
                        continue
                    if base.__module__ == home:
                        bases.append(base.__name__)
                    else:  # e.g. nn.Sequential: written out in full, so the rule sees it
                        aliases.append(f"import {base.__module__}")
                        bases.append(f"{base.__module__}.{base.__qualname__}")
                bases = ", ".join(bases)
                source = f"class {name}({bases}):\n" + ("\n".join(methods) or "    pass\n")
            else:
                source = textwrap.dedent(inspect.getsource(value))
        except (OSError, TypeError):
            continue
        cells.append((name, source, False))
    return [("imports", "\n".join(aliases), False), *cells]


def check_from_scratch(function, forbidden, name: str | None = None) -> None:
    """Assert that ``function`` cannot reach a forbidden API, by the grader's own rule.

    The hidden grader reads the code your function can reach (helpers, aliases,
    default arguments) and zeroes a from-scratch part that calls one of
    ``forbidden`` or uses a way around the check (threads, ``exec``, computed
    attribute names on modules). This visible check applies the same rule to the
    functions and classes you have defined so far.
    """
    from . import rules

    label = name or f"{function.__name__} from scratch"
    forbidden = tuple(forbidden)
    findings = rules.analyze(
        _program(function, forbidden), [("part", function.__name__, forbidden)]
    )
    found = findings.get("part", [])
    in_code, lines = [], set()
    # One message per line: F.conv2d and torch.conv2d are the same function, named as written.
    for finding in sorted(found, key=lambda f: not f.name.startswith("torch.nn.functional.")):
        if finding.cell != "imports" and (finding.cell, finding.line) not in lines:
            lines.add((finding.cell, finding.line))
            in_code.append(finding)
    problems = [finding.describe() for finding in in_code] or [
        f"uses {finding.name} (imported or aliased in the notebook)" for finding in found
    ]
    assert not problems, f"{label}: " + "; ".join(problems[:3])
    print(f"✓ {label}")
