"""Results of grading one submission, and their Gradescope ``results.json`` form."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

TIMING_FIELDS = ("execution_time",)  # what differs between two gradings of one submission


def clean(text: str) -> str:
    """Valid UTF-8 (lone surrogates and the like replaced): safe to write to any file."""
    return str(text).encode("utf-8", "replace").decode("utf-8")


def gradescope_numbers(tests: list[TestResult]) -> list[str]:
    """Gradescope's ``number`` of each test: "part.check", both 1-based, in rubric order."""
    parts: dict[str, int] = {}
    counts: dict[int, int] = {}
    numbers = []
    for test in tests:
        part = parts.setdefault(test.part, len(parts) + 1)
        counts[part] = counts.get(part, 0) + 1
        numbers.append(f"{part}.{counts[part]}")
    return numbers


@dataclass
class TestResult:
    __test__ = False  # a result, not a pytest test class
    check: str
    part: str
    name: str
    score: float
    max_score: float
    passed: bool
    output: str

    def __post_init__(self) -> None:
        self.name, self.output = clean(self.name), clean(self.output)


@dataclass
class SubmissionResult:
    assignment: str
    student: str
    score: float
    max_score: float
    tests: list[TestResult]
    notes: list[str] = field(default_factory=list)
    sandbox: str = ""
    device: str = "cpu"
    sha256: str = ""
    execution_time: float = 0.0
    output_tail: str = ""
    fatal: str | None = None
    late_penalty: float = 0.0  # points the course's late-penalty plugin takes off ``score``
    # Figures for the class leaderboard: {"name", "value", "order"} (Gradescope's schema).
    leaderboard: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Every string from a submission or a child is made valid UTF-8 here, once."""
        self.student = clean(self.student)
        self.notes = [clean(note) for note in self.notes]
        self.output_tail = clean(self.output_tail)
        self.fatal = None if self.fatal is None else clean(self.fatal)
        self.leaderboard = [
            {"name": clean(str(e["name"])), "value": float(e["value"]), "order": e["order"]}
            for e in self.leaderboard
            if isinstance(e, dict)
            and isinstance(e.get("value"), int | float)
            and math.isfinite(e["value"])
            and e.get("order") in ("asc", "desc")
        ]

    def board(self, name: str) -> float | None:
        """This submission's leaderboard figure ``name``, or None."""
        return next((e["value"] for e in self.leaderboard if e["name"] == name), None)

    def to_gradescope(self) -> dict:
        """Gradescope's autograder results schema, with our details under ``extra_data``."""
        lines = [f"Sandbox: {self.sandbox}", f"Device: {self.device}"]
        lines += [f"Note: {note}" for note in self.notes]
        if self.fatal:
            lines.insert(0, f"This submission could not be graded: {self.fatal}")
        data = {
            "score": round(self.score, 4),
            "execution_time": round(self.execution_time, 3),
            "output": "\n".join(lines),
            "output_format": "text",
            "visibility": "visible",
            "stdout_visibility": "hidden",
            "tests": [
                {
                    "name": test.name,
                    "name_format": "text",
                    "score": round(test.score, 4),
                    "max_score": round(test.max_score, 4),
                    "status": "passed" if test.passed else "failed",
                    "output": test.output,
                    "output_format": "text",
                    "visibility": "visible",
                    "tags": [test.part],
                    "number": number,
                    "extra_data": {"check": test.check, "part": test.part},
                }
                for test, number in zip(self.tests, gradescope_numbers(self.tests))
            ],
            "extra_data": {
                "assignment": self.assignment,
                "student": self.student,
                "max_score": self.max_score,
                "sandbox": self.sandbox,
                "device": self.device,
                "submission_sha256": self.sha256,
                "notes": self.notes,
                "fatal": self.fatal,
                "late_penalty": self.late_penalty,
            },
        }
        if self.leaderboard:
            data["leaderboard"] = [dict(entry) for entry in self.leaderboard]
        return data

    @classmethod
    def from_gradescope(cls, data: dict) -> SubmissionResult:
        extra = data.get("extra_data", {})
        tests = [
            TestResult(
                # our check id; files written before "number" became "P.C" kept it there
                check=(t.get("extra_data") or {}).get("check", t.get("number", "")),
                part=(t.get("extra_data") or {}).get("part", (t.get("tags") or [""])[0]),
                name=t["name"],
                score=t["score"],
                max_score=t["max_score"],
                passed=t["status"] == "passed",
                output=t.get("output", ""),
            )
            for t in data.get("tests", [])
        ]
        return cls(
            assignment=extra.get("assignment", ""),
            student=extra.get("student", ""),
            score=data["score"],
            max_score=extra.get("max_score", sum(t.max_score for t in tests)),
            tests=tests,
            notes=extra.get("notes", []),
            sandbox=extra.get("sandbox", ""),
            device=extra.get("device", ""),
            sha256=extra.get("submission_sha256", ""),
            execution_time=data.get("execution_time", 0.0),
            fatal=extra.get("fatal"),
            late_penalty=float(extra.get("late_penalty") or 0.0),
            leaderboard=list(data.get("leaderboard") or []),
        )


def write_json_atomic(path: Path, data: dict) -> None:
    """Write via a temporary file and rename, so a killed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(handle, "w") as stream:
        json.dump(data, stream, indent=2, sort_keys=True)
        stream.write("\n")
    os.replace(temporary, path)


def read_results(path: Path) -> SubmissionResult | None:
    try:
        return SubmissionResult.from_gradescope(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
