"""Lab 2's model challenge: saving and loading submitted weights, and CPU latency.

The autograder loads the weights file submitted beside the notebook with
:func:`load_weights` (``torch.load(weights_only=True)``, then a strict
``load_state_dict`` into the student's own class), so a notebook that checks its file
with the same function sees what the grader will see.
"""

from __future__ import annotations

from pathlib import Path

import torch


def save_weights(model: torch.nn.Module, path: str | Path = "model.pt") -> Path:
    """Save ``model.state_dict()`` (tensors only, on the CPU) where the grader looks for it."""
    state = {name: value.detach().cpu() for name, value in model.state_dict().items()}
    torch.save(state, path)
    return Path(path)


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in ``path``, or a ValueError that says what is wrong with the file."""
    name = Path(path).name
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise ValueError(f"there is no weights file {name}") from None
    except Exception as exc:  # any file torch cannot read safely is the submitter's to fix
        text = str(exc).strip()
        first = text.splitlines()[0].split(". ")[0][:200] if text else ""  # its first sentence
        raise ValueError(
            f"{name} could not be read with torch.load(weights_only=True) "
            f"({type(exc).__name__}: {first}). Is it cut off, or a whole pickled model? "
            "Save it with cnnkit.save_weights(model) (torch.save(model.state_dict(), path))"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(
            f"{name} holds a value of type {type(state).__name__}, not a state dict: save it with "
            "cnnkit.save_weights(model) (torch.save(model.state_dict(), path))"
        )
    wrong = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if wrong:
        raise ValueError(
            f"{name} is not a state dict: {wrong[0]!r} holds a value of type "
            f"{type(state[wrong[0]]).__name__}, not a tensor (a checkpoint of a model and "
            "an epoch counter? save model.state_dict() alone)"
        )
    return dict(state)


def load_weights(model: torch.nn.Module, path: str | Path = "model.pt") -> torch.nn.Module:
    """Load ``path`` into ``model`` strictly, on the CPU, in eval mode (what the grader does)."""
    state = read_state(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(
            f"{Path(path).name} does not fit this model: {str(exc).strip()[:1500]}"
        ) from None
    return model.eval()


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def latency_ms(model: torch.nn.Module, image_size: int = 32, min_run_time: float = 1.0) -> float:
    """Median milliseconds per image at batch 1 on one CPU thread (torch.utils.benchmark)."""
    import logging

    # Importing the benchmark module loads the C++ extension helpers, which log a warning
    # on machines without CUDA; nothing here compiles anything.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils import benchmark

    model = model.eval().cpu()
    x = torch.randn(1, 3, image_size, image_size)
    timer = benchmark.Timer(
        stmt="model(x)",
        setup="import torch",
        globals={"model": model, "x": x},
        num_threads=1,
    )
    with torch.no_grad():
        measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return measurement.median * 1000
