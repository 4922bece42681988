"""Seeded inputs for the hidden suites: one generator per (assignment, check).

Every input a check sends to a student comes from here, so the same
submission sees the same numbers on every run, whatever ran before it.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


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
