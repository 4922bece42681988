"""One assignment's grading context: rubric, source cells, helper files, and scoring.

:class:`AssignmentGrader` reads what every submission of an assignment shares
once; for each submission it builds the program the sandbox runs, decides the
from-scratch rule by static analysis, and turns the hidden tests' case
outcomes into a :class:`SubmissionResult`. The hidden tests themselves run in
the pytest plugin (``autograder/pytest_plugin.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from autograder.course import Course, package_files
from autograder.notebook import (
    Answers,
    Cell,
    build_program,
    extract_answers,
    read_source,
    top_level_definitions,
)
from autograder.results import SubmissionResult, TestResult
from autograder.rubric import Rubric, load_rubric
from autograder.staticcheck import Finding, analyze


@dataclass
class CaseOutcome:
    """One parametrized case of a hidden test, as the judge saw it."""

    check: str
    label: str
    passed: bool
    message: str = ""
    limit: bool = False  # a time or memory limit (or a crash) ended it


@dataclass
class Prepared:
    """A submission ready to run: its answers, the cells to execute, the static verdicts."""

    answers: Answers
    program: list[dict]
    findings: dict[str, list[Finding]]


class AssignmentGrader:
    def __init__(self, course: Course, assignment: str, device: str = "cpu") -> None:
        course.require(assignment)
        self.course = course
        self.assignment = assignment
        self.device = device
        self.rubric: Rubric = load_rubric(course.rubric_path(assignment))
        self.source: list[Cell] = read_source(course.source_notebook(assignment))
        # What the sandbox gets of the course: the released helper modules, sent with each job.
        release = course.release_dir / assignment
        self.files: dict[str, str] = {}
        for name in self.rubric.files:
            if (release / name).is_dir():
                self.files.update(package_files(release, name))
            else:
                self.files[name] = (release / name).read_text()

    def prepare(self, raw: bytes) -> Prepared:
        """Parse and repair a submission (raises NotebookError when it cannot be read)."""
        answers = extract_answers(raw, self.rubric, self.source)
        program = build_program(self.rubric, self.source, answers)
        return Prepared(answers, program, self.findings(program))

    def solution(self) -> Prepared:
        """The source notebook as a submission: what an instructor's test run grades."""
        return self.prepare(self.course.source_notebook(self.assignment).read_bytes())

    def findings(self, program: list[dict]) -> dict[str, list[Finding]]:
        cells = [(c["id"], c["source"], c["id"] in self.rubric.setup_cells) for c in program]
        sources = {c["id"]: c["source"] for c in program}
        # Every function and class the answer cell defines is the part's (a cell may hold
        # two classes); its other top-level code (a comparison with F.conv2d) is not, and
        # counts only where the part's code reaches it.
        parts = [
            (
                part.id,
                {part.function} | top_level_definitions(sources.get(part.answer_cell, "")),
                part.forbidden.names,
            )
            for part in self.rubric.parts
            if part.forbidden is not None
        ]
        return analyze(cells, parts)

    def _name(self, check_id: str) -> str:
        check = self.rubric.check(check_id)
        return f"{self.rubric.part(check.part).title}: {check.description}"

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

    def result(
        self,
        student: str,
        sha: str,
        prepared: Prepared,
        outcomes: list[CaseOutcome],
        cell_errors: dict[str, str],
        *,
        sandbox: str,
        notes: list[str] = (),
        seconds: float = 0.0,
        output_tail: str = "",
    ) -> SubmissionResult:
        """Score every rubric check: it passes when all of its cases passed."""
        from autograder.checks import summarize  # imports torch: only judges call this

        by_check: dict[str, list[CaseOutcome]] = {}
        for outcome in outcomes:
            by_check.setdefault(outcome.check, []).append(outcome)
        tests = []
        for part in self.rubric.parts:
            reason = prepared.answers.missing.get(part.answer_cell)
            if reason is None and part.answer_cell in cell_errors:
                reason = f"cell '{part.answer_cell}' failed: {cell_errors[part.answer_cell]}"
            for check in part.checks:
                cases = by_check.get(check.id, [])
                failures = [(c.label, c.message) for c in cases if not c.passed]
                passed = bool(cases) and not failures
                message = summarize(failures, len(cases)) if cases else "not run"
                if not passed and reason and not message.startswith("from-scratch rule"):
                    message = f"{reason} — {message}"
                score = check.points if passed else 0.0
                tests.append(
                    TestResult(
                        check.id,
                        part.id,
                        self._name(check.id),
                        score,
                        check.points,
                        passed,
                        message,
                    )
                )
        all_notes = list(prepared.answers.notes) + list(notes)
        for cell_id in self.rubric.setup_cells:
            if cell_id in cell_errors:
                all_notes.append(f"setup cell '{cell_id}' failed: {cell_errors[cell_id]}")
        return SubmissionResult(
            assignment=self.assignment,
            student=student,
            score=sum(t.score for t in tests),
            max_score=self.rubric.total_points,
            tests=tests,
            notes=all_notes,
            sandbox=sandbox,
            device=self.device,
            sha256=sha,
            execution_time=seconds,
            output_tail=output_tail,
        )
