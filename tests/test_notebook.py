"""Are submissions matched to the source by grade_id, whatever students did to them?"""

from __future__ import annotations

import json

import nbformat
import pytest
from hostile_corpus import foreign_notebook

from autograder.course import Course
from autograder.notebook import (
    NotebookError,
    build_program,
    extract_answers,
    parse_cells,
    read_source,
    strip_magics,
)
from autograder.rubric import load_rubric

ASSIGNMENT = "m06_02_convolution"


@pytest.fixture(scope="module")
def context(course):
    rubric = load_rubric(course.rubric_path(ASSIGNMENT))
    source = read_source(course.source_notebook(ASSIGNMENT))
    data = json.loads(course.source_notebook(ASSIGNMENT).read_text())
    return rubric, source, data


def cells_of(data):
    return {c["metadata"].get("nbgrader", {}).get("grade_id"): c for c in data["cells"]}


def encode(data) -> bytes:
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty file"),
        (b"   \n", "empty file"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a notebook"),
        (b'{"nbformat": 5, "cells": []}', "unsupported nbformat"),
    ],
)
def test_unreadable_files_get_a_clear_message(raw, message):
    with pytest.raises(NotebookError, match=message):
        parse_cells(raw)


def test_the_solution_is_matched_completely(context):
    rubric, source, data = context
    answers = extract_answers(encode(data), rubric, source)
    assert set(answers.cells) == {p.answer_cell for p in rubric.parts}
    assert not answers.notes and not answers.missing


def test_reordered_cells_are_still_found(context):
    rubric, source, data = context
    data = json.loads(json.dumps(data))
    data["cells"].reverse()
    answers = extract_answers(encode(data), rubric, source)
    assert set(answers.cells) == {p.answer_cell for p in rubric.parts}
    program = build_program(rubric, source, answers)
    assert [c["id"] for c in program][0] == "setup", "the program follows the source order"


def test_deleted_cell_is_reported_missing(context):
    rubric, source, data = context
    data = json.loads(json.dumps(data))
    data["cells"] = [
        c
        for c in data["cells"]
        if c["metadata"].get("nbgrader", {}).get("grade_id") != "max_pool2d"
    ]
    answers = extract_answers(encode(data), rubric, source)
    assert "max_pool2d" in answers.missing and "deleted" in answers.missing["max_pool2d"]


def test_duplicated_cell_uses_the_edited_copy(context):
    rubric, source, data = context
    data = json.loads(json.dumps(data))
    cell = cells_of(data)["global_avg_pool2d"]
    stub = json.loads(json.dumps(cell))
    stub["source"] = "def global_avg_pool2d(x):\n    raise NotImplementedError()\n"
    data["cells"].insert(data["cells"].index(cell) + 1, stub)
    answers = extract_answers(encode(data), rubric, source)
    assert "x.mean" in answers.cells["global_avg_pool2d"]
    assert any("appears 2 times" in n for n in answers.notes)


def test_retyped_cell_is_graded_as_code_with_a_note(context):
    rubric, source, data = context
    data = json.loads(json.dumps(data))
    cell = cells_of(data)["global_avg_pool2d"]
    cell["cell_type"] = "markdown"
    cell.pop("outputs", None)
    cell.pop("execution_count", None)
    answers = extract_answers(encode(data), rubric, source)
    assert "x.mean" in answers.cells["global_avg_pool2d"]
    assert any("markdown" in n for n in answers.notes)


def test_cell_without_metadata_is_found_by_its_function(context):
    rubric, source, data = context
    data = json.loads(json.dumps(data))
    cells_of(data)["avg_pool2d"]["metadata"] = {}
    answers = extract_answers(encode(data), rubric, source)
    assert "def avg_pool2d" in answers.cells["avg_pool2d"]
    assert any("lost its nbgrader metadata" in n for n in answers.notes)


def test_changed_locked_cell_is_restored_from_source(context):
    rubric, source, data = context
    data = json.loads(json.dumps(data))
    cells_of(data)["setup"]["source"] = "import os\nos.system('echo pwned')\n"
    answers = extract_answers(encode(data), rubric, source)
    program = build_program(rubric, source, answers)
    assert "pwned" not in program[0]["source"] and "import cnnkit" in program[0]["source"]
    assert any("locked cell 'setup' was modified" in n for n in answers.notes)


def test_notebook_of_another_assignment_is_refused(context):
    rubric, source, _ = context
    with pytest.raises(NotebookError, match="does not belong to m06_02_convolution"):
        extract_answers(foreign_notebook(), rubric, source)


def test_nbformat3_is_converted(context):
    rubric, source, data = context
    v4 = nbformat.reads(json.dumps(data), as_version=4)
    v3 = nbformat.writes(nbformat.convert(v4, 3))
    answers = extract_answers(v3.encode(), rubric, source)
    assert any("nbformat 3" in n for n in answers.notes)
    assert "conv2d" in answers.cells


def test_other_kernel_is_noted(context):
    rubric, source, data = context
    data = json.loads(json.dumps(data))
    data["metadata"]["kernelspec"] = {"name": "julia-1.9", "display_name": "Julia"}
    answers = extract_answers(encode(data), rubric, source)
    assert any("julia-1.9" in n for n in answers.notes)


def test_magics_are_commented_out():
    assert strip_magics("%matplotlib inline\nx = 1\n  !pip install foo\n") == (
        "# (not run by the grader) %matplotlib inline\nx = 1\n  # (not run by the grader) !pip install foo\n"
    )


def test_added_cells_keep_only_definitions_with_their_line_numbers():
    from autograder.notebook import definitions_only

    text = (
        "import math\nfrom torch import nn\nSCALE = 2.0\nNAMES = ('a', 'b')\n"
        "model = Box()\n@staticmethod\ndef helper(x):\n    return x * SCALE\n"
        "class Box:\n    pass\nfor _ in range(10**9):\n    pass\nhelper(3)\nx: int = 3\n"
    )
    kept = definitions_only(text).splitlines()
    assert kept[0] == "import math" and kept[2] == "SCALE = 2.0" and kept[3].startswith("NAMES")
    assert kept[4] == "" and kept[5] == "@staticmethod" and kept[6] == "def helper(x):"
    assert "for _ in" not in "\n".join(kept) and "helper(3)" not in kept
    assert kept[-1] == "x: int = 3"
    assert definitions_only("def broken(:\n") == ""


def test_added_cells_run_where_the_student_put_them_and_never_replace_an_answer():
    """An added cell after an answer cell may subclass the graded class at definition
    time; an experiment's copy of a graded function does not replace the answer."""
    course = Course.here()
    assignment = "m06_03_architectures"
    rubric = load_rubric(course.rubric_path(assignment))
    source = read_source(course.source_notebook(assignment))
    data = json.loads(course.source_notebook(assignment).read_text())
    cells = data["cells"]
    index = next(
        i
        for i, c in enumerate(cells)
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "BasicBlock"
    )
    stage = "class Stage(nn.Sequential):\n    def __init__(self, block=BasicBlock):\n        super().__init__(block(4, 4))\n"
    shadow = "def receptive_field(layers):\n    return 0\n"
    cells.insert(index + 1, {"cell_type": "code", "metadata": {}, "outputs": [], "source": stage})
    cells.insert(0, {"cell_type": "code", "metadata": {}, "outputs": [], "source": shadow})
    answers = extract_answers(json.dumps(data).encode(), rubric, source)
    program = [cell["id"] for cell in build_program(rubric, source, answers)]
    stage_label = next(label for label, text, _ in answers.added if "class Stage" in text)
    assert program.index(stage_label) == program.index("BasicBlock") + 1
    assert not any("return 0" in text for _, text, _ in answers.added)  # not replaced


def test_added_cells_keep_constants_computed_from_literals_and_pure_library_calls():
    from autograder.notebook import definitions_only

    known = {"nn": "torch.nn", "partial": "functools.partial", "math": "math", "torch": "torch"}
    text = (
        "DIVISOR = 2 ** 3\nDIMS = tuple(range(2, 4))\nW = math.sqrt(2)\n"
        "conv3x3 = partial(nn.Conv2d, kernel_size=3)\nWIDTHS = [DIVISOR * i for i in range(3)]\n"
        "model = Net()\nx = torch.load('w.pt')\nloader = torch.utils.data.DataLoader([])\n"
        "data = open('f').read()\nf = lambda: 1\n"
    )
    dropped: list[str] = []
    kept = definitions_only(text, known=known, dropped=dropped).splitlines()
    assert kept[:5] == text.splitlines()[:5]
    assert not any(kept[5:])
    assert dropped == ["model", "x", "loader", "data", "f"]
