"""Seeded inputs for the hidden suites: one generator per (assignment, check).

Every input a check sends to a student comes from here, so the same
submission sees the same numbers on every run, whatever ran before it.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch

from autograder.child.probes import build_model


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

    def model_spec(self, layers: list, train: bool = False) -> dict:
        """A float64 model spec for the ``model_call`` probe, with seeded weights
        (fan-in scaled) and batch-norm statistics; build it here with :func:`trusted_model`."""
        template = build_model({"layers": layers, "dtype": "float64"}, "cpu")
        state = {}
        for name, value in template.state_dict().items():
            if not value.is_floating_point():
                state[name] = value.clone()
            elif name.endswith("running_var"):
                state[name] = 0.5 + self.rand(*value.shape)
            elif name.endswith("running_mean") or name.endswith("bias"):
                state[name] = 0.3 * self.randn(*value.shape)
            elif value.dim() == 1:  # batch-norm scale
                state[name] = 1 + 0.2 * self.randn(*value.shape)
            else:
                state[name] = self.randn(*value.shape) / math.sqrt(value[0].numel())
        return {"layers": layers, "state": state, "dtype": "float64", "train": train}


def trusted_model(spec: dict) -> torch.nn.Module:
    """The model a spec describes, built in the trusted process for the reference."""
    return build_model(spec, "cpu")
