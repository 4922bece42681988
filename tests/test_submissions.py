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
    found = {s.student: s for s in discover(tmp_path, "a1", "a1.ipynb")}
    assert set(found) == {"amy", "bo", "cy", "dee"}
    assert found["amy"].path.name == "a1.ipynb" and not found["amy"].problem
    assert "renamed.ipynb" in found["bo"].problem and found["bo"].path is not None
    assert found["cy"].path is None and "no notebook" in found["cy"].problem
    assert found["dee"].path.name == "dee.ipynb"


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        discover(tmp_path / "nope", "a1", "a1.ipynb")
