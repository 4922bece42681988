"""nbgrader's own `validate`, as a student runs it before submitting: a correct notebook
passes (no check cell prints a warning), and the release, with its TODO stubs, fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.course import Course, copy_package
from autograder.mutants import Lazy, apply_lazy

COURSE = Course.here()
ASSIGNMENTS = COURSE.assignments()


def validate(notebook: Path, folder: Path) -> str:
    """`nbgrader validate` on a copy of ``notebook`` with the helper module beside it."""
    folder.mkdir(parents=True)
    copy = folder / notebook.name
    shutil.copy(notebook, copy)
    copy_package(COURSE.helper_module, folder / COURSE.helper_module.name)
    env = dict(os.environ, CNNKIT_SMOKE="1", CNNKIT_DATA=str(folder / "data"))
    env.pop("MPLBACKEND", None)
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", "validate", copy.name],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_nbgrader_validate_passes_the_solution(assignment, tmp_path):
    output = validate(COURSE.source_notebook(assignment), tmp_path / "solution")
    assert "Success! Your notebook passes all the tests." in output, output[-4000:]


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_nbgrader_validate_fails_the_release(assignment, tmp_path):
    output = validate(COURSE.release_notebook(assignment), tmp_path / "release")
    assert "VALIDATION FAILED" in output, output[-4000:]
    assert "NotImplementedError" in output


@pytest.mark.slow
def test_a_conv2d_that_calls_the_library_fails_its_visible_check(tmp_path):
    """`return F.conv2d(...)` passes every value check; the visible from-scratch check,
    the grader's own rule, fails it before the student submits."""
    source = COURSE.source_notebook("m06_02_convolution")
    shortcut = "return F.conv2d(x, weight, bias, stride, padding, dilation, groups)\n"
    raw = apply_lazy(source, Lazy("shortcut", "calls F.conv2d", (("conv2d", shortcut),)))
    notebook = tmp_path / "src" / source.name
    notebook.parent.mkdir()
    notebook.write_bytes(raw)
    output = validate(notebook, tmp_path / "shortcut")
    assert "VALIDATION FAILED ON 1 CELL(S)" in output, output[-4000:]
    assert "AssertionError" in output and "calls F.conv2d" in output, output[-3000:]
