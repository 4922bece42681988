"""Is what crosses from the sandbox plain, bounded data before anything touches it?"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autograder.remote import Handle, OutputError, accept, clean_text, error_text


class FakeSession:
    device = "cpu"
    generation = 1


def test_plain_values_are_converted():
    value = {
        "t": {"__tensor__": torch.ones(2), "device": "cpu"},
        "a": {"__ndarray__": torch.zeros(3)},
        "h": {"__handle__": 4, "type": "torch.nn.Linear"},
        "l": [1, 2.5, "x", None, True, (1, 2)],
    }
    out = accept(value, FakeSession())
    assert torch.equal(out["t"], torch.ones(2))
    assert isinstance(out["a"], np.ndarray) and out["a"].shape == (3,)
    assert isinstance(out["h"], Handle) and "Linear" in repr(out["h"])
    assert out["l"] == [1, 2.5, "x", None, True, (1, 2)]


def test_a_shared_reference_bomb_is_refused_quickly():
    bomb = [0]
    for _ in range(60):
        bomb = [bomb, bomb]
    with pytest.raises(OutputError, match="more than"):
        accept(bomb, FakeSession())


def test_deep_nesting_is_refused_without_recursion():
    deep = [0]
    for _ in range(200_000):
        deep = [deep]
    with pytest.raises(OutputError, match="nested"):
        accept(deep, FakeSession())


@pytest.mark.parametrize(
    "value",
    [
        object(),
        {1: 2},
        {"__tensor__": "not a tensor"},
        {"__handle__": "x"},
        2**10000,
        {"__tensor__": torch.ones(1), "device": "tpu"},
    ],
)
def test_anything_else_is_refused(value):
    with pytest.raises(OutputError):
        accept(value, FakeSession())


def test_tensor_subclasses_do_not_cross():
    class Lying(torch.Tensor):
        pass

    with pytest.raises(OutputError):
        accept({"__tensor__": torch.ones(1).as_subclass(Lying), "device": "cpu"}, FakeSession())


def test_text_is_valid_utf8_and_bounded():
    assert clean_text("a\ud800b") == "a?b"
    assert len(clean_text("x" * 100_000)) <= 20_001
    assert accept("\udcff", FakeSession()).encode("utf-8")


def test_error_text_never_trusts_its_input():
    assert error_text(["not", "a", "dict"]) == "the submission's code failed"
    bomb = [0]
    for _ in range(60):
        bomb = [bomb, bomb]
    assert error_text({"type": "ValueError", "message": bomb, "where": 3}) == "ValueError"
    assert (
        error_text({"type": "E", "message": "m\ud800", "where": "cell a, line 1"})
        == "E: m? (cell a, line 1)"
    )
