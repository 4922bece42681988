"""Does the demo class contain each kind of submission the README promises?"""

from __future__ import annotations

import json

from autograder.demo import build_demo_class


def test_demo_class_roles(course, tmp_path):
    roles = build_demo_class(course, "m06_02_convolution", tmp_path)
    assert set(roles) == {"ada", "ben", "cleo", "dev", "eve"}
    assert "dilation" in roles["cleo"]
    for student in roles:
        assert (tmp_path / student / "m06_02_convolution" / "m06_02_convolution.ipynb").exists()
    broken = (tmp_path / "eve" / "m06_02_convolution" / "m06_02_convolution.ipynb").read_bytes()
    try:
        json.loads(broken)
    except json.JSONDecodeError:
        pass
    else:
        raise AssertionError("eve's notebook should be cut off")


def test_demo_class_with_weights_files(course, tmp_path):
    """Lab 2's demo: the solution's weights beside the notebooks, a cut-off copy for fay,
    none for the untouched release (the trained file is reused when it is there)."""
    assignment = "c12_efficient_cifar"
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model.pt").write_bytes(b"w" * 1000)
    roles = build_demo_class(course, assignment, tmp_path / "submitted")
    assert "cut off" in roles["fay"]

    def weights(student):
        path = tmp_path / "submitted" / student / assignment / "model.pt"
        return path.read_bytes() if path.exists() else None

    assert weights("ada") == weights("cleo") == b"w" * 1000
    assert weights("fay") == b"w" * 500
    assert weights("ben") is None
