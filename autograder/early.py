"""Serve mode: start the sandbox worker before the judge imports its suite.

``grade`` starts each judge with ``-p autograder.early`` and the worker's
settings in ``$AUTOGRADER_EARLY_WORKER``. The worker (a fresh Python that
imports torch) then warms up while the judge imports the plugin, torch and
the suite, instead of after; the plugin adopts it in ``launch_worker``.
"""

from __future__ import annotations

import json
import os

import pytest

WORKER = None  # (Worker, SandboxInfo, device) once launched


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args) -> None:
    global WORKER
    spec = os.environ.pop("AUTOGRADER_EARLY_WORKER", None)
    if not spec:
        return
    from autograder import sandbox
    from autograder.course import Course
    from autograder.rubric import load_rubric

    try:
        spec = json.loads(spec)
        rubric = load_rubric(Course.here().rubric_path(spec["assignment"]))
        info = sandbox.resolve_sandbox(spec["sandbox"])
        worker = sandbox.Worker(spec["index"], spec["device"], rubric.limits, info)
        worker.launch()
    except Exception:  # the plugin launches one the usual way, and reports what fails
        return
    WORKER = (worker, info, spec["device"])
    try:  # the judge is ready long before its worker: on a busy CPU, the worker goes first
        os.nice(5)
    except OSError:
        pass
