"""A weights file submitted beside the notebook (the rubric's ``weights:``), read for the sandbox.

The judge only reads bytes here, bounded by the rubric's ``max_mb``; it never unpickles
them. The sandbox writes them to ``submitted/<file>`` in the child's working folder,
where a hidden test loads them with ``torch.load(weights_only=True)`` into the student's
own class (``cnnkit.load_state``). Each problem is a message for the student, and costs
only the checks that need the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autograder.rubric import Weights


@dataclass(frozen=True)
class Attachment:
    """The submitted weights as the sandbox gets them, or why there are none."""

    data: bytes | None = None
    problem: str = ""
    sandbox_path: str = ""  # relative to the child's working folder

    def files(self) -> dict[str, bytes]:
        return {self.sandbox_path: self.data} if self.data is not None else {}


def where_to_put(spec: Weights) -> str:
    return (
        f"submit it as {spec.file} beside the notebook (nbgrader: submitted/<student>/"
        f"<assignment>/{spec.file}; a folder of downloads: <student>{spec.suffix} beside "
        f"<student>.ipynb)"
    )


def read_weights(path: Path | str | None, spec: Weights) -> Attachment:
    """The bytes of ``path``, or a message saying why they cannot be used."""
    if path is None:
        return Attachment(problem=f"no weights file was submitted: {where_to_put(spec)}")
    path = Path(path)
    limit = int(spec.max_mb * 1024 * 1024)
    try:
        size = path.stat().st_size
        if size > limit:
            return Attachment(
                problem=f"the weights file {path.name} is {size / 2**20:.1f} MB, over the "
                f"limit of {spec.max_mb:g} MB: it was not loaded"
            )
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        return Attachment(
            problem=f"the weights file {path.name} could not be read ({exc.strerror})"
        )
    if len(data) > limit:  # it grew while being read
        return Attachment(problem=f"the weights file {path.name} is over {spec.max_mb:g} MB")
    if not data:
        return Attachment(problem=f"the weights file {path.name} is empty")
    return Attachment(data=data, sandbox_path=f"submitted/{spec.file}")
