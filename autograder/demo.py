"""`make demo`: release every assignment, build a small class for each, grade it.

The demo class shows each kind of outcome: the solution (full marks), the
untouched release (zero), a plausible bug (loses exactly its checks), a syntax
error in one cell (that task and the tasks built on it lost, the rest graded) and a
mangled file (a clear message). Where the rubric takes a weights file, the solution
submits the one its builder trains on the offline fixture, and a second copy of the
solution submits a cut-off file (the weights checks lost, with the reason).
"""

from __future__ import annotations

from pathlib import Path

from autograder.batch import BatchSummary, grade_batch
from autograder.course import Course
from autograder.mutants import apply_mutant, edit_cell, load_mutants, solution_weights_builder
from autograder.notebook import read_source
from autograder.release import release
from autograder.rubric import load_rubric


def build_demo_class(course: Course, assignment: str, submitted: Path) -> dict[str, str]:
    """Write nbgrader's ``submitted/<student>/<assignment>/`` tree; returns who is what."""
    source = course.source_notebook(assignment)
    rubric = load_rubric(course.rubric_path(assignment))
    notebooks: dict[str, tuple[str, bytes]] = {
        "ada": ("the instructor's solution", source.read_bytes()),
        "ben": ("the release, untouched", course.release_notebook(assignment).read_bytes()),
    }
    mutants = [m for m in load_mutants(assignment) if m.demo]
    if mutants:
        notebooks["cleo"] = (
            f"a plausible bug: {mutants[0].description}",
            apply_mutant(source, mutants[0]),
        )
    first = rubric.parts[0].answer_cell
    notebooks["dev"] = (
        f"a syntax error in cell '{first}': that part, and parts built on it, lose points; the rest is graded",
        edit_cell(source, first, lambda text: text + "\n    return (  # unfinished edit\n"),
    )
    notebooks["eve"] = ("a file cut off mid-save (invalid JSON)", source.read_bytes()[:1500])
    read_source(source)  # the source itself must parse
    weights = demo_weights(assignment, rubric, submitted.parent / "weights")
    if weights is not None:
        notebooks["fay"] = (
            "the solution with a weights file cut off mid-upload",
            source.read_bytes(),
        )
    roles = {}
    for student, (role, data) in notebooks.items():
        folder = submitted / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{assignment}.ipynb").write_bytes(data)
        if weights is not None and student != "ben":
            cut = student == "fay"
            (folder / rubric.weights.file).write_bytes(
                weights[: len(weights) // 2] if cut else weights
            )
        roles[student] = role
    return roles


def demo_weights(assignment: str, rubric, folder: Path) -> bytes | None:
    """The solution's weights file, trained once by the builder the mutants file names."""
    builder = solution_weights_builder(assignment)
    if rubric.weights is None or builder is None:
        return None
    path = folder / rubric.weights.file
    if not path.is_file():
        import importlib

        print(f"training the solution's {rubric.weights.file} for {assignment} ({builder})")
        folder.mkdir(parents=True, exist_ok=True)
        module, function = builder.split(":")
        getattr(importlib.import_module(module), function)(path)
    return path.read_bytes()


def run_demo(
    out: Path, *, assignments: list[str] | None, workers: int, course: Course
) -> list[BatchSummary]:
    ids = assignments or course.assignments()
    for path in release(ids, course=course):
        print(f"released {path}")
    summaries = []
    for assignment in ids:
        roles = build_demo_class(course, assignment, out / assignment / "submitted")
        print(f"\ndemo class for {assignment}:")
        for student, role in roles.items():
            print(f"  {student:<5} {role}")
        summaries.append(
            grade_batch(
                assignment,
                out / assignment / "submitted",
                out / assignment / "graded",
                workers=workers,
                force=True,
                # a demo class has its own gradebook, not the course's
                gradebook=f"sqlite:///{(out / assignment / 'graded' / 'gradebook.db').resolve()}",
                course=course,
            )
        )
    return summaries
