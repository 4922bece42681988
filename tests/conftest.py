"""Shared fixtures: the course, the sandbox mode, and grading through the real batch path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from autograder.batch import grade_batch
from autograder.course import Course
from autograder.results import SubmissionResult
from autograder.sandbox import SandboxInfo, check_bubblewrap

COURSE = Course.here()


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def course_folders_stay_clean():
    """Grading defaults to the course's gradebook and autograded/: no test may write them."""
    root = Course.here().root
    watched = [root / "gradebook.db", root / "autograded", root / "feedback"]
    before = {path for path in watched if path.exists()}
    yield
    created = [str(path) for path in watched if path.exists() and path not in before]
    assert not created, f"a test wrote into the course itself: {created} (pass gradebook=)"


@pytest.fixture(scope="session")
def course() -> Course:
    return COURSE


def load_cnnkit():
    """The shared notebook helper module, imported from source/ as notebooks import it."""
    from autograder.course import load_helper

    return load_helper()


@pytest.fixture(scope="session")
def sandbox_info() -> SandboxInfo:
    return check_bubblewrap()


@pytest.fixture(scope="session")
def bubblewrap(sandbox_info) -> SandboxInfo:
    if sandbox_info.mode != "bubblewrap":
        pytest.skip(f"bubblewrap does not work here: {sandbox_info.reason}")
    return sandbox_info


def book(out: Path) -> str:
    """A gradebook of the test's own (grading defaults to the course's)."""
    return f"sqlite:///{out / 'gradebook.db'}"


def grade_notebooks(
    assignment: str,
    notebooks: dict[str, bytes],
    root: Path,
    weights: dict[str, bytes | None] | None = None,
    **options,
) -> dict[str, SubmissionResult]:
    """Grade ``{student: notebook bytes}`` in one batch, as ``grade`` does; ``weights``
    puts ``<student>.pt`` beside a notebook (None: no weights file for that student)."""
    folder = root / "submitted"
    folder.mkdir(parents=True, exist_ok=True)
    for student, raw in notebooks.items():
        (folder / f"{student}.ipynb").write_bytes(raw)
        if weights and weights.get(student) is not None:
            (folder / f"{student}.pt").write_bytes(weights[student])
    options = {"workers": 2, "progress": False, "gradebook": book(root / "graded"), **options}
    summary = grade_batch(assignment, folder, root / "graded", **options)
    return {result.student: result for result in summary.results}


def weights_variant(kind: str, solution: bytes) -> bytes | None:
    """A test submission's weights file, made from the solution's (mutants' ``weights:``)."""
    import io

    if kind == "solution":
        return solution
    if kind == "missing":
        return None
    if kind == "corrupt":
        return solution[: len(solution) // 3]  # a cut-off upload
    state = torch.load(io.BytesIO(solution), weights_only=True)
    if kind == "untrained":
        generator = torch.Generator().manual_seed(0)
        state = {
            name: torch.randn(value.shape, generator=generator) * 0.1
            if value.is_floating_point() and not name.endswith("running_var")
            else value
            for name, value in state.items()
        }
        payload = state
    elif kind == "checkpoint":
        payload = {"model": state, "epoch": 5}
    elif kind == "pickled_model":
        payload = torch.nn.Module()  # a whole pickled object, not a state dict
    else:
        raise ValueError(f"unknown weights kind {kind!r}")
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def solution_weights(tmp_path_factory):
    """``solution_weights(assignment)``: the bytes of the weights the assignment's solution
    submits (trained on the offline fixture by the builder its mutants file names), or None."""
    import importlib

    from autograder.mutants import solution_weights_builder

    cache: dict[str, bytes | None] = {}

    def build(assignment: str) -> bytes | None:
        if assignment not in cache:
            builder = solution_weights_builder(assignment)
            if builder is None:
                cache[assignment] = None
            else:
                module, function = builder.split(":")
                path = tmp_path_factory.mktemp(f"weights-{assignment}") / "model.pt"
                getattr(importlib.import_module(module), function)(path)
                cache[assignment] = path.read_bytes()
        return cache[assignment]

    return build


@pytest.fixture(scope="session")
def grade(tmp_path_factory):
    """``grade(assignment, {student: bytes}, **options)``: results by student."""

    def run(assignment: str, notebooks: dict[str, bytes], **options):
        return grade_notebooks(assignment, notebooks, tmp_path_factory.mktemp("batch"), **options)

    return run


@pytest.fixture
def submissions(tmp_path):
    """A folder to put submissions in; cleaned up by pytest."""
    folder = tmp_path / "submitted"
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
