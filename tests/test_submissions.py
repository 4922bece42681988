"""Are both submission layouts found, and are problems reported instead of crashing?"""

from __future__ import annotations

import pytest

from autograder.submissions import discover


def test_nbgrader_tree_and_flat_folder(tmp_path):
    (tmp_path / "amy" / "a1").mkdir(parents=True)
    (tmp_path / "amy" / "a1" / "a1.ipynb").write_text("{}")
    (tmp_path / "bo" / "a1").mkdir(parents=True)
    (tmp_path / "bo" / "a1" / "renamed.ipynb").write_text("{}")
    (tmp_path / "cy" / "a1").mkdir(parents=True)
    (tmp_path / "dee.ipynb").write_text("{}")
    (tmp_path / "notes.txt").write_text("ignored")
    submissions, problems = discover(tmp_path, "a1", "a1.ipynb")
    found = {s.student: s for s in submissions}
    assert problems == []
    assert set(found) == {"amy", "bo", "cy", "dee"}
    assert found["amy"].path.name == "a1.ipynb" and not found["amy"].problem
    assert "renamed.ipynb" in found["bo"].problem and found["bo"].path is not None
    assert found["cy"].path is None and "no notebook" in found["cy"].problem
    assert found["dee"].path.name == "dee.ipynb"


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        discover(tmp_path / "nope", "a1", "a1.ipynb")


def test_ids_that_collide_with_outputs_or_are_invalid_are_named_not_graded(tmp_path):
    for name in ("grades.csv", "Report.HTML", "gradebook.db", "-dash", "ok"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    submissions, problems = discover(tmp_path, "a1", "a1.ipynb")
    assert [s.student for s in submissions] == ["ok"]
    assert len(problems) == 4 and all("not graded" in p for p in problems)
    assert any("collides with the grader's output file" in p for p in problems)


def test_lms_download_names_follow_the_documented_rule(tmp_path):
    names = [
        "Jane Doe.ipynb",  # spaces -> Jane_Doe
        "dan.IPYNB",  # any case of the suffix
        "kim (1).ipynb",  # a browser's second copy
        "lee_LATE_12345_67890_m06_02_convolution.ipynb",  # Canvas, late
        "max_11111_22222_m06_02_convolution-1.ipynb",  # Canvas
        "m06_02_convolution (1).ipynb",  # no student in the name
        "m06_02_convolution.ipynb",
    ]
    for name in names:
        (tmp_path / name).write_text("{}")
    submissions, problems = discover(tmp_path, "m06_02_convolution", "m06_02_convolution.ipynb")
    found = {s.student: s for s in submissions}
    assert set(found) == {"Jane_Doe", "dan", "kim", "lee", "max"}
    assert found["lee"].path.name.startswith("lee_LATE_") and "Canvas" in found["lee"].problem
    assert "read as 'Jane_Doe'" in found["Jane_Doe"].problem
    unmatched = sorted(p.split(":")[0] for p in problems)
    assert unmatched == ["m06_02_convolution (1).ipynb", "m06_02_convolution.ipynb"]
    assert all("names the assignment, not a student" in p for p in problems)


def test_two_files_for_one_student_are_both_named_and_neither_graded(tmp_path):
    (tmp_path / "amy.ipynb").write_text("{}")
    (tmp_path / "amy (1).ipynb").write_text("{}")
    (tmp_path / "bo.ipynb").write_text("{}")
    submissions, problems = discover(tmp_path, "a1", "a1.ipynb")
    assert [s.student for s in submissions] == ["bo"]
    assert len(problems) == 1 and "amy (1).ipynb, amy.ipynb" in problems[0]
    assert "all read as student 'amy'" in problems[0]
