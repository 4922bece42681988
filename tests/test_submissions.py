"""Are both submission layouts found, and are problems reported instead of crashing?"""

from __future__ import annotations

import pytest

from autograder.rubric import Weights
from autograder.submissions import discover, submission_sha
from autograder.weights import read_weights


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


def test_weights_files_are_found_beside_their_notebooks(tmp_path):
    """nbgrader's submitted/<s>/<id>/model.pt, a flat <s>.pt, a Canvas download name; a
    weights file without a notebook and a student with two are named, not guessed."""
    (tmp_path / "amy" / "a1").mkdir(parents=True)
    (tmp_path / "amy" / "a1" / "a1.ipynb").write_text("{}")
    (tmp_path / "amy" / "a1" / "model.pt").write_bytes(b"amy")
    (tmp_path / "bo" / "a1").mkdir(parents=True)
    (tmp_path / "bo" / "a1" / "a1.ipynb").write_text("{}")
    (tmp_path / "dee.ipynb").write_text("{}")
    (tmp_path / "dee.pt").write_bytes(b"dee")
    (tmp_path / "eve_12_34_a1.ipynb").write_text("{}")
    (tmp_path / "eve_12_34_model.pt").write_bytes(b"eve")
    (tmp_path / "fay.ipynb").write_text("{}")
    (tmp_path / "fay.pt").write_bytes(b"1")
    (tmp_path / "fay (1).pt").write_bytes(b"2")
    (tmp_path / "ghost.pt").write_bytes(b"?")
    submissions, problems = discover(tmp_path, "a1", "a1.ipynb", weights="model.pt")
    found = {s.student: s.weights for s in submissions}
    assert found["amy"].read_bytes() == b"amy" and found["bo"] is None
    assert found["dee"].read_bytes() == b"dee" and found["eve"].read_bytes() == b"eve"
    assert found["fay"] is None
    assert any("ghost.pt: a weights file with no notebook" in p for p in problems)
    assert any("several weights files for 'fay'" in p for p in problems)
    plain, _ = discover(tmp_path, "a1", "a1.ipynb")
    assert all(s.weights is None for s in plain)


def test_a_regrade_sees_new_weights(tmp_path):
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"one")
    first = submission_sha(b"{}", weights)
    weights.write_bytes(b"two")
    assert submission_sha(b"{}", weights) != first
    assert submission_sha(b"{}") != first and submission_sha(b"{}", tmp_path / "gone.pt")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no weights file was submitted: submit it as model.pt beside the notebook"),
        (b"", "the weights file model.pt is empty"),
        (b"x" * (2 * 2**20), "is 2.0 MB, over the limit of 1 MB: it was not loaded"),
    ],
)
def test_weights_that_cannot_be_used_say_why(tmp_path, content, message):
    path = None
    if content is not None:
        path = tmp_path / "model.pt"
        path.write_bytes(content)
    attachment = read_weights(path, Weights(max_mb=1))
    assert attachment.data is None and message in attachment.problem
    assert attachment.files() == {}


def test_usable_weights_go_to_the_sandbox_under_submitted(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"abc")
    attachment = read_weights(tmp_path / "w.pt", Weights())
    assert attachment.files() == {"submitted/model.pt": b"abc"} and not attachment.problem
