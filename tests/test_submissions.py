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
