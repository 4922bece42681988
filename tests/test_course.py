"""Does the course layout find assignments and refuse unknown ones?"""

from __future__ import annotations

import pytest

from autograder.course import Course


def test_assignments_have_source_and_rubric(course):
    for assignment in course.assignments():
        assert (
            course.source_notebook(assignment).exists() and course.rubric_path(assignment).exists()
        )
    assert course.helper_module.name == "cnnkit" and (course.helper_module / "__init__.py").exists()


def test_unknown_assignment_is_refused(course):
    with pytest.raises(ValueError, match="unknown assignment 'nope'"):
        course.require("nope")


def test_an_empty_course_has_no_assignments(tmp_path):
    (tmp_path / "rubrics").mkdir()
    (tmp_path / "rubrics" / "orphan.yaml").write_text("assignment: orphan\n")
    assert Course(tmp_path).assignments() == []
