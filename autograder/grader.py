"""Grading one submission: parse, scan, run in the sandbox, judge.

:class:`AssignmentGrader` does the per-assignment work once (rubric, source
cells, hidden-suite cases and their references) and then grades any number of
submissions with it.
"""

from __future__ import annotations

import hashlib

from autograder.course import Course
from autograder.judge import judge
from autograder.notebook import NotebookError, build_program, extract_answers, read_source
from autograder.results import SubmissionResult, TestResult
from autograder.rubric import Rubric, load_rubric
from autograder.sandbox import Worker, execute
from autograder.staticcheck import Finding, scan
from autograder.suite import load_suite


class AssignmentGrader:
    def __init__(self, course: Course, assignment: str, device: str = "cpu") -> None:
        course.require(assignment)
        self.course = course
        self.assignment = assignment
        self.device = device
        self.rubric: Rubric = load_rubric(course.rubric_path(assignment))
        self.source = read_source(course.source_notebook(assignment))
        self.cases = load_suite(assignment).build(self.rubric)
        self.probes: list[dict] = []
        self.first_index: dict[str, int] = {}
        for part in self.rubric.parts:
            for check in part.checks:
                self.first_index[check.id] = len(self.probes)
                for number, case in enumerate(self.cases[check.id]):
                    probe = dict(case.probe)
                    probe["wall_seconds"] = check.wall_seconds or self.rubric.limits.check_seconds
                    probe["trace_ops"] = part.forbidden is not None
                    probe["seed"] = number
                    probe["check"] = check.id
                    self.probes.append(probe)

        # What the sandbox gets of the course: the released helper modules, sent with each job.
        release = course.release_dir / assignment
        self.files = {name: (release / name).read_text() for name in self.rubric.files}

    def findings(self, cells: dict[str, str]) -> dict[str, list[Finding]]:
        escapes = [
            f for cell_id, text in cells.items() for f in scan(cell_id, text, ()) if f.escape
        ]
        result = {}
        for part in self.rubric.parts:
            if part.forbidden is None:
                continue
            own = [
                f
                for f in scan(
                    part.answer_cell, cells.get(part.answer_cell, ""), part.forbidden.names
                )
                if not f.escape
            ]
            if own or escapes:
                result[part.id] = own + escapes
        return result

    def fatal_result(self, student: str, sha: str, message: str, sandbox: str) -> SubmissionResult:
        tests = [
            TestResult(
                c.id, c.part, self._name(c.id), 0.0, c.points, False, f"not graded: {message}"
            )
            for c in self.rubric.checks
        ]
        return SubmissionResult(
            self.assignment,
            student,
            0.0,
            self.rubric.total_points,
            tests,
            sandbox=sandbox,
            device=self.device,
            sha256=sha,
            fatal=message,
        )

    def _name(self, check_id: str) -> str:
        check = self.rubric.check(check_id)
        return f"{self.rubric.part(check.part).title}: {check.description}"

    def grade(self, worker: Worker, raw: bytes, student: str, job_id: int = 0) -> SubmissionResult:
        sha = hashlib.sha256(raw).hexdigest()
        sandbox = worker.info.description
        try:
            answers = extract_answers(raw, self.rubric, self.source)
        except NotebookError as exc:
            return self.fatal_result(student, sha, str(exc), sandbox)
        program = build_program(self.rubric, self.source, answers)
        execution = execute(worker, program, self.probes, self.files, job_id)
        outcomes = judge(
            self.rubric,
            self.cases,
            execution.results,
            self.first_index,
            execution.cell_errors,
            answers.missing,
            self.findings(answers.cells),
            self.device,
        )
        notes = list(answers.notes) + list(execution.notes)
        for cell_id in self.rubric.setup_cells:
            if cell_id in execution.cell_errors:
                notes.append(f"setup cell '{cell_id}' failed: {execution.cell_errors[cell_id]}")
        tests = [
            TestResult(
                o.check.id,
                o.check.part,
                self._name(o.check.id),
                o.score,
                o.check.points,
                o.passed,
                o.message,
            )
            for o in outcomes
        ]
        return SubmissionResult(
            assignment=self.assignment,
            student=student,
            score=sum(t.score for t in tests),
            max_score=self.rubric.total_points,
            tests=tests,
            notes=notes,
            sandbox=sandbox,
            device=self.device,
            sha256=sha,
            execution_time=execution.seconds,
            output_tail=execution.output_tail,
        )
