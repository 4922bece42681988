"""The 6-01 fully connected baseline: saved once, compared with in later notebooks.

6-01 trains an MLP on CIFAR-10 and calls :func:`save_baseline`; 6-02, 6-03 and the
other CIFAR-10 notebooks call :func:`print_comparison` (or :func:`load_baseline`)
to show their own accuracy and parameter count next to it.

Where it is kept: a full run writes ``fc_baseline.json`` to ``cnnkit/`` in the torch
cache (``torch.hub.get_dir()``'s parent, ``~/.cache/torch`` unless ``TORCH_HOME``
says otherwise), the folder the pretrained weights already use
(:func:`cnnkit.env.weights_cache_path`), so notebooks in different folders find it.
A smoke run (``CNNKIT_SMOKE=1``) keeps its numbers beside the data instead
(``data_root()/cache``), so it never replaces a full run's.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import torch

from .env import data_root, smoke_mode

__all__ = ["baseline_path", "load_baseline", "print_comparison", "save_baseline"]

MODES = ("smoke", "full")
FILE_NAME = "fc_baseline.json"


def baseline_path(mode: str | None = None) -> Path:
    """Where the baseline of a ``mode`` run ("smoke" or "full"; default: the current
    run mode) is kept."""
    mode = mode or ("smoke" if smoke_mode() else "full")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "smoke":
        return data_root() / "cache" / FILE_NAME
    return Path(torch.hub.get_dir()).parent / "cnnkit" / FILE_NAME


def save_baseline(accuracy: float, parameters: int, mode: str) -> Path:
    """Keep the FC baseline's test accuracy (a fraction in [0, 1]) and parameter count.

    ``mode`` is "smoke" or "full" (the run that produced them). Returns the JSON file.
    """
    if isinstance(parameters, bool) or not isinstance(parameters, int) or parameters < 0:
        raise ValueError(f"parameters must be a non-negative int, got {parameters!r}")
    accuracy = float(accuracy)
    if not (math.isfinite(accuracy) and 0.0 <= accuracy <= 1.0):
        raise ValueError(f"accuracy must be a fraction in [0, 1], got {accuracy!r}")
    path = baseline_path(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"accuracy": accuracy, "parameters": parameters, "mode": mode}
    # written beside the target and renamed: a reader never sees half a file
    handle, staging = tempfile.mkstemp(prefix=".fc_baseline-", suffix=".json", dir=path.parent)
    with os.fdopen(handle, "w") as stream:
        json.dump(record, stream)
    os.replace(staging, path)
    return path


def load_baseline() -> dict | None:
    """``{"accuracy", "parameters", "mode"}`` of the current run mode's baseline, or None
    when 6-01 has not been run (or its file is unreadable)."""
    path = baseline_path()
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    accuracy, parameters, mode = (record.get(key) for key in ("accuracy", "parameters", "mode"))
    if (
        type(accuracy) not in (int, float)
        or type(parameters) is not int
        or mode not in MODES
        or not 0.0 <= accuracy <= 1.0
    ):
        return None
    return {"accuracy": float(accuracy), "parameters": parameters, "mode": mode}


def print_comparison(label: str, accuracy: float, parameters: int) -> dict | None:
    """Print a model's test accuracy and parameter count next to the FC baseline's;
    returns the baseline (None, with a note to run 6-01 first, when there is none)."""
    print(f"{label}: test accuracy {float(accuracy):.1%}, {int(parameters):,} parameters")
    baseline = load_baseline()
    if baseline is None:
        print("6-01 FC baseline: none saved yet; run 6-01 first to compare")
    else:
        print(
            f"6-01 FC baseline ({baseline['mode']} run): test accuracy "
            f"{baseline['accuracy']:.1%}, {baseline['parameters']:,} parameters"
        )
    return baseline
