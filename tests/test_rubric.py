"""Does the rubric parser accept the course's rubrics and reject malformed ones clearly?"""

from __future__ import annotations

import copy

import pytest

from autograder.rubric import Limits, RubricError, load_rubric, parse_rubric

VALID = {
    "assignment": "demo",
    "setup_cells": ["setup"],
    "forbidden": {"names": ["torch.nn.functional.conv2d"], "ops": ["*conv*"]},
    "parts": [
        {
            "id": "f",
            "checks": [
                {"id": "f_a", "points": 2, "description": "a"},
                {"id": "f_b", "points": 1, "description": "b"},
            ],
        },
        {
            "id": "g",
            "from_scratch": True,
            "checks": [{"id": "g_a", "points": 3, "description": "c", "rtol": 0, "atol": 0}],
        },
    ],
}


def test_valid_rubric_parses_with_defaults():
    rubric = parse_rubric(VALID)
    assert rubric.total_points == 6
    assert rubric.part("f").answer_cell == "f" and rubric.part("f").check_cell == "check_f"
    assert rubric.part("f").forbidden is None
    assert rubric.part("g").forbidden.ops == ("*conv*",)
    assert rubric.check("g_a").atol == 0
    assert rubric.limits == Limits()
    assert rubric.weights is None
    weighted = parse_rubric({**VALID, "weights": {"file": "net.pt", "max_mb": 5}})
    assert weighted.weights.file == "net.pt" and weighted.weights.max_mb == 5
    assert rubric.leaderboard == () and rubric.cpu_only is False
    assert rubric.part("f").scale_free == ""
    board = parse_rubric(
        {
            **VALID,
            "cpu_only": True,
            "leaderboard": [{"name": "Accuracy", "target": 90}, {"name": "ms", "order": "asc"}],
        }
    )
    assert board.cpu_only is True
    assert [(b.name, b.order, b.target) for b in board.leaderboard] == [
        ("Accuracy", "desc", 90.0),
        ("ms", "asc", None),
    ]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("parts"), "missing 'parts'"),
        (lambda d: d["parts"][0]["checks"][0].update(points=0), "points must be positive"),
        (lambda d: d["parts"][0]["checks"][1].update(id="f_a"), "duplicate check ids"),
        (lambda d: d["parts"][0]["checks"][0].pop("description"), "missing 'description'"),
        (lambda d: d.update(limits={"cpu_seconds": -1}), "must be a positive number"),
        (lambda d: d.update(limits={"gpu_hours": 1}), "unknown limits"),
        (lambda d: d.pop("forbidden"), "from_scratch needs a 'forbidden' list"),
        (lambda d: d["parts"][0]["checks"][0].update(rtol=-1), "tolerances must be >= 0"),
        (lambda d: d.update(weights={"file": "../x.pt"}), "must be a plain file name"),
        (lambda d: d.update(weights={"max_mb": 500}), "max_mb must be in"),
        (lambda d: d.update(weights={"size": 5}), "'weights' takes 'file' and 'max_mb'"),
        (lambda d: d.update(leaderboard=[{"value": 1}]), "takes 'name', 'order' and 'target'"),
        (lambda d: d.update(leaderboard=[{"name": "a", "order": "up"}]), "'asc' or 'desc'"),
        (lambda d: d.update(leaderboard=[{"name": "a", "target": "90%"}]), "must be a number"),
    ],
)
def test_malformed_rubrics_are_rejected_with_a_reason(mutate, message):
    data = copy.deepcopy(VALID)
    mutate(data)
    with pytest.raises(RubricError, match=message):
        parse_rubric(data)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(RubricError, match="no rubric"):
        load_rubric(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("parts: [\n")
    with pytest.raises(RubricError, match="invalid YAML"):
        load_rubric(bad)


def test_course_rubrics_load(course):
    for assignment in course.assignments():
        rubric = load_rubric(course.rubric_path(assignment))
        assert rubric.assignment == assignment
        assert rubric.total_points > 0
