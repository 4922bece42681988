"""Are hidden-suite inputs deterministic, and do suite and rubric have to agree?"""

from __future__ import annotations

import pytest
import torch

from autograder.fixtures import Fixtures
from autograder.rubric import parse_rubric
from autograder.suite import Case, Suite, call


def test_fixtures_are_deterministic_per_key():
    assert torch.equal(Fixtures("a/x").randn(3, 4), Fixtures("a/x").randn(3, 4))
    assert not torch.equal(Fixtures("a/x").randn(3, 4), Fixtures("a/y").randn(3, 4))
    assert Fixtures("k").randn(2).dtype == torch.float64
    assert 1 <= Fixtures("k").integer(1, 3) <= 3


def test_suite_and_rubric_must_agree():
    rubric = parse_rubric(
        {
            "assignment": "t",
            "parts": [{"id": "f", "checks": [{"id": "c1", "points": 1, "description": "d"}]}],
        }
    )
    suite = Suite("t")

    @suite.check("c2")
    def other(fx):
        yield Case("x", call("f"), 1)

    with pytest.raises(ValueError, match="disagree"):
        suite.build(rubric)
    with pytest.raises(ValueError, match="defined twice"):
        suite.check("c2")(other)


def test_course_suites_build_the_same_cases_twice(course):
    from autograder.grader import AssignmentGrader

    def same(a, b) -> bool:
        if isinstance(a, torch.Tensor):
            return torch.equal(a, b)
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list | tuple):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return a == b

    first = AssignmentGrader(course, "m06_02_convolution").probes
    second = AssignmentGrader(course, "m06_02_convolution").probes
    assert len(first) == len(second) > 50
    assert all(same(a, b) for a, b in zip(first, second))
