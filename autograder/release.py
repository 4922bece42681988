"""Student releases: nbgrader's generate_assignment, plus the shared helper module.

nbgrader replaces every solution region with the stub from
``nbgrader_config.py``, strips hidden tests, locks read-only cells and clears
outputs. The helper module is then written into every release folder, so a
release folder is everything a student needs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from autograder.course import HELPER_MODULE, Course, copy_package


class ReleaseError(RuntimeError):
    """nbgrader refused the source notebook; the message carries its log."""


def release(
    assignments: list[str] | None = None, *, course: Course | None = None, into: Path | None = None
) -> list[Path]:
    """Generate ``release/<id>/`` for each assignment (all by default).

    ``into`` writes the releases under another folder (used to check that the
    committed release is up to date) instead of ``release/``.
    """
    course = course or Course.here()
    ids = assignments or course.assignments()
    for assignment in ids:
        course.require(assignment)
    release_root = (into or course.release_dir).resolve()
    written = []
    for assignment in ids:
        command = [
            sys.executable, "-m", "nbgrader", "generate_assignment", assignment,
            "--force", "--no-db", "--log-level=WARN",
            f"--CourseDirectory.root={course.root}",
            f"--CourseDirectory.release_directory={release_root}",
        ]  # fmt: skip
        done = subprocess.run(command, cwd=course.root, capture_output=True, text=True)
        target = release_root / assignment
        if done.returncode != 0 or not (target / f"{assignment}.ipynb").exists():
            raise ReleaseError(
                f"nbgrader generate_assignment {assignment} failed:\n{done.stdout}\n{done.stderr}"
            )
        copy_package(course.helper_module, target / HELPER_MODULE)
        written.append(target)
    return written
