"""The course configuration: ``nbgrader_config.py`` is the one file for both tools.

nbgrader reads its own sections (``CourseDirectory``: root, ``db_url``, the
``submitted``/``autograded`` folders; ``AssignLatePenalties`` and
``LateSubmissionPlugin``: the late-penalty plugin). This grader reads the same
values, resolved against the folder that holds the file, plus one section of
its own::

    c.Autograder.due_dates = {"m06_02_convolution": "2026-12-04 17:00:00 Europe/London"}
    c.Autograder.heldout_data = {"c12_efficient_cifar": "/srv/course-private/cifar10"}

``heldout_data`` names, per assignment, a data set that students never see (a path
relative to the course root, or absolute); the hidden suite that grades submitted
weights evaluates them on it, and on its offline fixture where none is configured.

A due date in the config wins over one in the gradebook and is written into the
gradebook, so ``nbgrader`` and this grader always agree on it.
"""

from __future__ import annotations

import datetime
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_FILE = "nbgrader_config.py"


class ConfigError(ValueError):
    """The course configuration is unusable; the message names the file and the value."""


@dataclass(frozen=True)
class CourseConfig:
    path: Path | None  # the nbgrader_config.py read, or None (defaults)
    course_id: str = ""
    root: Path = Path(".")
    db_url: str = "sqlite:///gradebook.db"
    submitted_directory: str = "submitted"
    autograded_directory: str = "autograded"
    feedback_directory: str = "feedback"
    due_dates: dict[str, datetime.datetime] = field(default_factory=dict)
    late_plugin: str = "nbgrader.plugins.LateSubmissionPlugin"
    penalty_method: str = "none"
    heldout_data: dict[str, Path] = field(default_factory=dict)
    raw: object = None  # the traitlets Config, handed to nbgrader's plugin

    def autograded(self, student: str, assignment: str) -> Path:
        return self.root / self.autograded_directory / student / assignment

    def submitted(self) -> Path:
        return self.root / self.submitted_directory


def parse_due(text: str, where: str = "due date") -> datetime.datetime:
    """A time in nbgrader's formats, as naive UTC (the rules of ``nbgrader.utils.parse_utc``).

    ``2026-12-04 17:00:00 UTC``, ``2026-12-04 17:00:00 Europe/London``,
    ``2026-12-04 17:00:00 -0500`` or ISO 8601; a time without a zone is UTC.
    Parsed here with dateutil, as nbgrader does, without importing nbgrader.
    """
    import dateutil.parser
    import dateutil.tz

    try:
        parts = str(text).split(" ")
        if len(parts) == 3:
            try:
                zone = int(parts[2])
            except ValueError:
                zone = dateutil.tz.gettz(parts[2])
            moment = dateutil.parser.parse(" ".join(parts[:2] + ["TZ"]), tzinfos={"TZ": zone})
        else:
            moment = dateutil.parser.parse(str(text))
    except (ValueError, TypeError, OverflowError) as exc:
        raise ConfigError(f"{where}: cannot read {text!r} as a date ({exc})") from None
    if moment.tzinfo is not None:
        moment = (moment - moment.utcoffset()).replace(tzinfo=None)
    return moment


def import_nbgrader(module: str = "nbgrader.api"):
    """Import an nbgrader module without the IRI grammar jsonschema would compile.

    Importing nbgrader imports nbformat, hence jsonschema, whose optional
    ``rfc3987_syntax`` builds a parser grammar at import (seconds of CPU, more
    than the rest of nbgrader). Notebooks never use the IRI formats it checks,
    so this process goes without it; jsonschema treats it as not installed.
    """
    import importlib
    import sys

    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)
    return importlib.import_module(module)


def _sqlite_url(url: str, root: Path) -> str:
    """A relative SQLite path is relative to the course root, as for nbgrader run there."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != prefix + ":memory:":
        path = Path(url[len(prefix) :]).expanduser()
        if not path.is_absolute():
            return prefix + str((root / path).resolve())
    return url


@functools.cache
def load_config(course_root: Path) -> CourseConfig:
    """``course_root/nbgrader_config.py`` as a :class:`CourseConfig` (defaults when absent)."""
    path = course_root / CONFIG_FILE
    if not path.exists():
        return CourseConfig(
            path=None, root=course_root, db_url=_sqlite_url("sqlite:///gradebook.db", course_root)
        )
    from traitlets.config.loader import PyFileConfigLoader

    try:
        config = PyFileConfigLoader(CONFIG_FILE, path=str(course_root)).load_config()
    except Exception as exc:  # the instructor's Python file: any error is theirs to see
        raise ConfigError(f"{path}: {type(exc).__name__}: {exc}") from None
    directory = config.get("CourseDirectory", {})
    root = Path(os.path.expanduser(str(directory.get("root", ".")) or "."))
    root = (course_root / root).resolve() if not root.is_absolute() else root
    dues = config.get("Autograder", {}).get("due_dates", {}) or {}
    if not isinstance(dues, dict):
        raise ConfigError(f"{path}: c.Autograder.due_dates must be a dict of id -> date")
    heldout = config.get("Autograder", {}).get("heldout_data", {}) or {}
    if not isinstance(heldout, dict):
        raise ConfigError(f"{path}: c.Autograder.heldout_data must be a dict of id -> folder")
    plugin = config.get("AssignLatePenalties", {}).get("plugin_class", "")
    if isinstance(plugin, type):
        plugin = f"{plugin.__module__}.{plugin.__qualname__}"
    return CourseConfig(
        path=path,
        course_id=str(directory.get("course_id", "")),
        root=root,
        db_url=_sqlite_url(str(directory.get("db_url", "sqlite:///gradebook.db")), root),
        submitted_directory=str(directory.get("submitted_directory", "submitted")),
        autograded_directory=str(directory.get("autograded_directory", "autograded")),
        feedback_directory=str(directory.get("feedback_directory", "feedback")),
        due_dates={
            str(key): parse_due(value, f"{path}: c.Autograder.due_dates[{key!r}]")
            for key, value in dues.items()
        },
        late_plugin=str(plugin or "nbgrader.plugins.LateSubmissionPlugin"),
        penalty_method=str(config.get("LateSubmissionPlugin", {}).get("penalty_method", "none")),
        heldout_data={
            str(key): root / os.path.expanduser(str(value)) for key, value in heldout.items()
        },
        raw=config,
    )
