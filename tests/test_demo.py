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
