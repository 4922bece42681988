"""Due dates and late penalties, the nbgrader way.

The submission time is nbgrader's ``timestamp.txt`` in the student's
``submitted/<student>/<id>/`` folder (written by ``nbgrader collect`` or
``zip_collect``). The due date is ``c.Autograder.due_dates[id]`` in
``nbgrader_config.py`` or, failing that, the assignment's due date in the
gradebook (``nbgrader db assignment add ID --duedate=...``). The penalty is
whatever the configured nbgrader plugin says (``c.AssignLatePenalties.plugin_class``,
by default ``LateSubmissionPlugin`` with ``c.LateSubmissionPlugin.penalty_method``),
clamped to [0, score] as nbgrader's ``AssignLatePenalties`` does.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from autograder.config import ConfigError, CourseConfig, import_nbgrader, parse_due


@dataclass(frozen=True)
class Lateness:
    timestamp: datetime.datetime | None  # naive UTC, as nbgrader stores it
    due: datetime.datetime | None
    problem: str = ""  # an unreadable timestamp.txt, said in the feedback

    @property
    def seconds_late(self) -> float:
        if self.timestamp is None or self.due is None:
            return 0.0
        return max(0.0, (self.timestamp - self.due).total_seconds())


def read_timestamp(folder: Path | None) -> tuple[datetime.datetime | None, str]:
    """nbgrader's ``timestamp.txt`` in ``folder``: (time, problem)."""
    if folder is None:
        return None, ""
    path = folder / "timestamp.txt"
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()[:200]
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return None, f"timestamp.txt could not be read ({exc.strerror}); treated as on time"
    if not text:
        return None, "timestamp.txt is empty; treated as on time"
    try:
        return parse_due(text, "timestamp.txt"), ""
    except ConfigError:
        return None, f"timestamp.txt holds {text[:60]!r}, not a time; treated as on time"


def lateness(folder: Path | None, due: datetime.datetime | None) -> Lateness:
    timestamp, problem = read_timestamp(folder)
    return Lateness(timestamp, due, problem)


def late_plugin(config: CourseConfig):
    """An instance of the configured nbgrader late-penalty plugin."""
    module, _, name = config.late_plugin.rpartition(".")
    try:
        cls = getattr(import_nbgrader(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"{config.path}: c.AssignLatePenalties.plugin_class {config.late_plugin!r} "
            f"cannot be imported ({exc})"
        ) from None
    from traitlets.config import Config

    return cls(config=config.raw if config.raw is not None else Config())


def penalty(plugin, student: str, score: float, seconds_late: float) -> float:
    """The plugin's penalty for ``score`` submitted ``seconds_late`` late, in [0, score]."""
    if seconds_late <= 0:
        return 0.0
    value = plugin.late_submission_penalty(student, score, seconds_late)
    if value is None:
        return 0.0
    return float(min(max(float(value), 0.0), score))


def describe(timestamp: datetime.datetime, seconds_late: float, points: float) -> str:
    """The feedback's line about a late submission."""
    when = timestamp.strftime("%Y-%m-%d %H:%M UTC")
    text = f"Submitted {when}, {seconds_late / 3600:.1f} h after the due date"
    return text + (f": late penalty {points:g} points." if points else "; no late penalty applies.")
