"""Shared fixtures: the course, one grader and one sandbox worker per assignment."""

from __future__ import annotations

import shutil

import pytest
import torch

from autograder.course import Course
from autograder.grader import AssignmentGrader
from autograder.sandbox import SandboxInfo, Worker, check_bubblewrap

COURSE = Course.here()


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def course() -> Course:
    return COURSE


def load_cnnkit():
    """The shared notebook helper module, imported from source/ as notebooks import it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cnnkit", COURSE.helper_module)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def sandbox_info() -> SandboxInfo:
    return check_bubblewrap()


@pytest.fixture(scope="session")
def bubblewrap(sandbox_info) -> SandboxInfo:
    if sandbox_info.mode != "bubblewrap":
        pytest.skip(f"bubblewrap does not work here: {sandbox_info.reason}")
    return sandbox_info


class GradingKit:
    """Graders and started workers, created once per assignment and sandbox mode."""

    def __init__(self, info: SandboxInfo) -> None:
        self.info = info
        self.graders: dict[str, AssignmentGrader] = {}
        self.workers: dict[tuple[str, str], Worker] = {}

    def grader(self, assignment: str) -> AssignmentGrader:
        if assignment not in self.graders:
            self.graders[assignment] = AssignmentGrader(COURSE, assignment, "cpu")
        return self.graders[assignment]

    def worker(self, assignment: str, mode: str | None = None) -> Worker:
        info = self.info if mode in (None, self.info.mode) else SandboxInfo("rlimits", "test")
        key = (assignment, info.mode)
        if key not in self.workers:
            grader = self.grader(assignment)
            worker = Worker(len(self.workers), "cpu", grader.rubric.limits, info)
            worker.start()
            self.workers[key] = worker
        return self.workers[key]

    def grade(self, assignment: str, raw: bytes, student: str = "student", mode: str | None = None):
        return self.grader(assignment).grade(self.worker(assignment, mode), raw, student)

    def close(self) -> None:
        for worker in self.workers.values():
            worker.kill()


@pytest.fixture(scope="session")
def kit(sandbox_info):
    kit = GradingKit(sandbox_info)
    yield kit
    kit.close()


@pytest.fixture
def submissions(tmp_path):
    """A folder to put submissions in; cleaned up by pytest."""
    folder = tmp_path / "submitted"
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
