"""Seeded inputs for the hidden suites: one generator per (assignment, check).

Every input a check sends to a student comes from here, so the same
submission sees the same numbers on every run, whatever ran before it.
"""

from __future__ import annotations

import math
import posixpath
import zlib

import numpy as np
import torch

from autograder.course import load_helper


class Fixtures:
    """Deterministic random tensors for one check. Values are float64 on the CPU."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator, dtype=torch.float64)

    def rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator, dtype=torch.float64)

    def randint(self, low: int, high: int, *shape: int) -> torch.Tensor:
        return torch.randint(low, high, shape, generator=self.generator)

    def integer(self, low: int, high: int) -> int:
        """A Python int in [low, high]."""
        return int(torch.randint(low, high + 1, (1,), generator=self.generator))

    def choice(self, options: list):
        return options[self.integer(0, len(options) - 1)]

    def numpy_rng(self) -> np.random.Generator:
        return np.random.default_rng(zlib.crc32(self.key.encode()))

    def parameter(self, name: str, shape: torch.Size) -> torch.Tensor:
        """A seeded value for a parameter or buffer named ``name``: fan-in scaled
        kernels, small biases, batch-norm scales near 1 and varied running statistics."""
        if name.endswith("running_var"):
            return 0.5 + self.rand(*shape)
        if name.endswith("running_mean") or name.endswith("bias"):
            return 0.3 * self.randn(*shape)
        if len(shape) == 1:  # batch-norm scale
            return 1 + 0.2 * self.randn(*shape)
        return self.randn(*shape) / math.sqrt(math.prod(shape[1:]))

    def state_dict(self, template: torch.nn.Module, skip=()) -> dict[str, torch.Tensor]:
        """float32 seeded values for every floating entry of ``template``'s state dict (a
        module on the meta device is fine); integer buffers (BatchNorm's step counter) are 0."""
        state = {}
        for name, value in template.state_dict().items():
            if name in skip:
                continue
            if value.is_floating_point():
                state[name] = self.parameter(name, value.shape).float()
            else:
                state[name] = torch.zeros(value.shape, dtype=value.dtype)
        return state

    def model_spec(self, layers: list, train: bool = False) -> dict:
        """A float64 model spec with seeded weights: ``cnnkit.build_model(spec)`` builds it
        in the sandbox, :func:`trusted_model` here."""
        template = load_helper().build_model({"layers": layers, "dtype": "float64"})
        state = {
            name: value.clone()
            if not value.is_floating_point()
            else self.parameter(name, value.shape)
            for name, value in template.state_dict().items()
        }
        return {"layers": layers, "state": state, "dtype": "float64", "train": train}

    def module_state(self, reference: torch.nn.Module) -> list[torch.Tensor]:
        """float32 values for ``reference``'s slots in ``cnnkit.load_ordered`` order."""
        names = [name for name, _ in reference.named_parameters()]
        names += [name for name, b in reference.named_buffers() if b.is_floating_point()]
        return [
            self.parameter(name, slot.shape).float()
            for name, slot in zip(names, ordered_tensors(reference))
        ]


def ordered_tensors(model: torch.nn.Module) -> list[torch.Tensor]:
    """Parameters, then floating buffers, in registration order (``cnnkit.load_ordered``)."""
    return [*model.parameters(), *(b for b in model.buffers() if b.is_floating_point())]


def loaded(
    reference: torch.nn.Module, state: list[torch.Tensor], train: bool = False
) -> torch.nn.Module:
    """``reference`` in float64 holding ``state`` (float32 values, widened)."""
    reference = reference.double().train(train)
    with torch.no_grad():
        for slot, value in zip(ordered_tensors(reference), state, strict=True):
            slot.copy_(value.double())
    return reference


def trusted_model(spec: dict) -> torch.nn.Module:
    """The model a spec describes, built in the trusted process for the reference
    (the sandbox builds it with the released ``cnnkit.build_model``)."""
    return load_helper().build_model(spec)


def on_meta(factory, *args, **kwargs) -> torch.nn.Module:
    """``factory(*args, **kwargs)`` built on the meta device: shapes only, no memory."""
    with torch.device("meta"):
        return factory(*args, **kwargs)


def state_layout(module: torch.nn.Module) -> list[tuple[str, list[int]]]:
    """(name, shape) of every parameter, then every buffer, in registration order."""
    named = [*module.named_parameters(), *module.named_buffers()]
    return [(name, list(value.shape)) for name, value in named]


def reference_eval(factory, args, state, x, overrides=None) -> torch.Tensor:
    """``factory(*args)`` in float64 and eval mode, holding ``state`` (plus ``overrides``,
    already float tensors) loaded strictly, applied to ``x`` without gradients."""
    module = on_meta(factory, *args).to_empty(device="cpu").double()
    values = {name: value.double() for name, value in state.items()}
    values.update({name: value.double() for name, value in (overrides or {}).items()})
    module.load_state_dict(values, strict=True)
    module.eval()
    with torch.no_grad():
        return module(x.double())


def student_eval(student, cls: str, args, state, x):
    """The student's ``cls(*args)`` holding ``state`` (loaded strictly in the sandbox), in
    eval mode on the grading device, applied to ``x`` (float32)."""
    net = getattr(student, cls)(*args)
    net.load_state_dict(state)
    net.to(student.device)
    net.eval()
    return net(x.float())


def compare_module(student, check, inputs, reference, factory, cls: str, args, shape) -> None:
    """The student's ``cls(*args)`` against ``factory(*args)`` (a trusted module), both
    holding the same seeded state dict (the student's loaded strictly), in eval mode on
    a seeded input of ``shape``."""
    state = inputs.state_dict(on_meta(factory, *args))
    x = inputs.randn(*shape)
    expected = reference(lambda: reference_eval(factory, args, state, x))
    check.close(student_eval(student, cls, args, state, x), expected)


def name_difference(got: list[str], expected: list[str]) -> str:
    """A short description of how two lists of parameter names differ."""
    missing = [n for n in expected if n not in got]
    extra = [n for n in got if n not in expected]
    parts = []
    if missing:
        parts.append(f"missing {missing[:3]}" + (" ..." if len(missing) > 3 else ""))
    if extra:
        parts.append(f"unexpected {extra[:3]}" + (" ..." if len(extra) > 3 else ""))
    return "; ".join(parts) or "the same names in a different order"


def number(value):
    """A one-element tensor as a Python float (metrics may come back as 0-d tensors), a
    dict of them item by item; anything else unchanged."""
    if type(value) is torch.Tensor and value.numel() == 1 and not value.is_complex():
        return float(value.detach().double().cpu().reshape(()))
    if type(value) is dict:
        return {key: number(item) for key, item in value.items()}
    return value


class HubFolder:
    """``torch.hub`` in the sandbox pointed at a fresh temporary folder, restored on exit."""

    def __init__(self, student) -> None:
        self.student = student
        self.hub = student.lib("torch.hub")

    def __enter__(self) -> str:
        self.previous = self.hub.get_dir()
        self.folder = self.student.lib("tempfile").mkdtemp(prefix="hub-")
        self.student.lib("os").makedirs(posixpath.join(self.folder, "checkpoints"))
        self.hub.set_dir(self.folder)
        return self.folder

    def __exit__(self, *exc) -> None:
        self.hub.set_dir(self.previous)
        self.student.lib("shutil").rmtree(self.folder, True)
