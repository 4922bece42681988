"""Do results follow Gradescope's schema and survive a round trip and a crash mid-write?"""

from __future__ import annotations

import json

from autograder.results import SubmissionResult, TestResult, read_results, write_json_atomic


def sample() -> SubmissionResult:
    tests = [
        TestResult("c1", "p", "Part: one", 2.0, 2.0, True, "passed"),
        TestResult("c2", "p", "Part: two", 0.0, 1.0, False, "x: max abs error 1e-1"),
    ]
    return SubmissionResult(
        "a1",
        "amy",
        2.0,
        3.0,
        tests,
        notes=["n"],
        sandbox="bubblewrap",
        sha256="abc",
        execution_time=1.25,
    )


def test_gradescope_schema():
    data = sample().to_gradescope()
    assert {"score", "execution_time", "tests", "output"} <= set(data)
    for test in data["tests"]:
        assert {"name", "score", "max_score", "status", "output", "visibility"} <= set(test)
        assert test["status"] in ("passed", "failed")
    assert data["score"] == sum(t["score"] for t in data["tests"])
    assert data["output_format"] == "text"
    # Gradescope's "number" is "part.check" (1-based); our check id travels in extra_data
    assert [t["number"] for t in data["tests"]] == ["1.1", "1.2"]
    assert [t["extra_data"]["check"] for t in data["tests"]] == ["c1", "c2"]
    assert all(t["output_format"] == "text" for t in data["tests"])


def test_round_trip_and_atomic_write(tmp_path):
    path = tmp_path / "amy" / "results.json"
    write_json_atomic(path, sample().to_gradescope())
    back = read_results(path)
    assert (
        back.score == 2.0 and back.sha256 == "abc" and [t.check for t in back.tests] == ["c1", "c2"]
    )
    assert not list(path.parent.glob(".tmp-*"))
    path.write_text("{half a fi")
    assert read_results(path) is None
    json.loads(json.dumps(sample().to_gradescope()))


def test_numbers_follow_parts_and_old_files_still_read():
    tests = [
        TestResult("a1", "p", "P: a1", 1.0, 1.0, True, ""),
        TestResult("b1", "q", "Q: b1", 1.0, 1.0, True, ""),
        TestResult("b2", "q", "Q: b2", 0.0, 1.0, False, ""),
    ]
    data = SubmissionResult("a1", "amy", 2.0, 3.0, tests).to_gradescope()
    assert [t["number"] for t in data["tests"]] == ["1.1", "2.1", "2.2"]
    back = SubmissionResult.from_gradescope(data)
    assert [(t.check, t.part) for t in back.tests] == [("a1", "p"), ("b1", "q"), ("b2", "q")]
    for test in data["tests"]:  # written before: the check id in "number", the part in tags
        test["number"] = test.pop("extra_data")["check"]
    assert [t.check for t in SubmissionResult.from_gradescope(data).tests] == ["a1", "b1", "b2"]


def test_leaderboard_round_trips_and_drops_what_gradescope_would_reject(tmp_path):
    result = sample()
    result.leaderboard = [
        {"name": "Accuracy (%)", "value": 91.5, "order": "desc"},
        {"name": "Latency (ms)", "value": 3, "order": "asc"},
        {"name": "bad order", "value": 1.0, "order": "up"},
        {"name": "not finite", "value": float("nan"), "order": "asc"},
        {"name": "text", "value": "fast", "order": "asc"},
    ]
    result.__post_init__()
    data = result.to_gradescope()
    assert data["leaderboard"] == [
        {"name": "Accuracy (%)", "value": 91.5, "order": "desc"},
        {"name": "Latency (ms)", "value": 3.0, "order": "asc"},
    ]
    path = tmp_path / "results.json"
    write_json_atomic(path, data)
    back = read_results(path)
    assert back.board("Latency (ms)") == 3.0 and back.board("Parameters") is None
    assert "leaderboard" not in sample().to_gradescope()
