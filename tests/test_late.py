"""Due dates, timestamps and late penalties read the nbgrader way."""

from __future__ import annotations

import datetime

import pytest

from autograder.config import ConfigError, load_config, parse_due
from autograder.late import describe, late_plugin, lateness, penalty


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-01 12:00:00 UTC",
        "2026-11-01 12:00:00 Europe/London",
        "2026-07-01 12:00:00 America/New_York",
        "2026-11-01 12:00:00 -0500",
        "2026-11-01T12:00:00+02:00",
        "2026-11-01 12:00:00.123456",
    ],
)
def test_times_parse_as_nbgrader_parses_them(text):
    from nbgrader.utils import parse_utc

    assert parse_due(text) == parse_utc(text)


def test_a_bad_date_is_one_clear_error():
    with pytest.raises(ConfigError, match="cannot read 'next friday-ish'"):
        parse_due("next friday-ish", "due date")


def test_the_course_config_is_read_relative_to_its_folder(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.CourseDirectory.db_url = 'sqlite:///books/gradebook.db'\n"
        "c.CourseDirectory.autograded_directory = 'marked'\n"
        "c.Autograder.due_dates = {'m06_02_convolution': '2026-11-01 12:00:00 UTC'}\n"
        "c.LateSubmissionPlugin.penalty_method = 'zero'\n"
        "c.Autograder.heldout_data = {'c12_efficient_cifar': 'private/cifar'}\n"
    )
    config = load_config(tmp_path)
    assert config.heldout_data == {"c12_efficient_cifar": tmp_path.resolve() / "private" / "cifar"}
    assert config.db_url == f"sqlite:///{tmp_path.resolve() / 'books' / 'gradebook.db'}"
    assert config.autograded("amy", "m06_02_convolution") == (
        tmp_path.resolve() / "marked" / "amy" / "m06_02_convolution"
    )
    assert config.due_dates["m06_02_convolution"] == datetime.datetime(2026, 11, 1, 12)
    plugin = late_plugin(config)
    assert penalty(plugin, "amy", 17.0, 3600) == 17.0  # 'zero': the whole score
    assert penalty(plugin, "amy", 17.0, 0) == 0.0


def test_a_broken_config_names_the_file(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text(
        "c = get_config()\nc.Autograder.due_dates = {'x': 'soon'}\n"
    )
    with pytest.raises(ConfigError, match="nbgrader_config.py"):
        load_config(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "nbgrader_config.py").write_text("this is not python(\n")
    with pytest.raises(ConfigError, match="SyntaxError"):
        load_config(other)


def test_timestamps_missing_empty_or_garbled_count_as_on_time(tmp_path):
    due = datetime.datetime(2026, 11, 1, 12)
    assert lateness(tmp_path, due).timestamp is None
    (tmp_path / "timestamp.txt").write_text("")
    assert "empty" in lateness(tmp_path, due).problem
    (tmp_path / "timestamp.txt").write_text("\x00garbage")
    late = lateness(tmp_path, due)
    assert late.timestamp is None and "not a time" in late.problem
    (tmp_path / "timestamp.txt").write_text("2026-11-02 22:00:00 UTC\n")
    late = lateness(tmp_path, due)
    assert late.seconds_late == 34 * 3600
    assert describe(late.timestamp, late.seconds_late, 20).startswith(
        "Submitted 2026-11-02 22:00 UTC, 34.0 h after the due date: late penalty 20 points"
    )


def test_a_custom_plugin_is_imported_and_clamped(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "course_plugins.py").write_text(
        "class Fixed:\n"
        "    def __init__(self, config=None):\n        pass\n"
        "    def late_submission_penalty(self, student_id, score, total_seconds_late):\n"
        "        return -5 if student_id == 'neg' else score / 2 + 100\n"
    )
    (tmp_path / "nbgrader_config.py").write_text(
        "c = get_config()\nc.AssignLatePenalties.plugin_class = 'course_plugins.Fixed'\n"
    )
    plugin = late_plugin(load_config(tmp_path))
    assert penalty(plugin, "amy", 10.0, 60) == 10.0
    assert penalty(plugin, "neg", 10.0, 60) == 0.0
    (tmp_path / "nbgrader_config.py").write_text(
        "c = get_config()\nc.AssignLatePenalties.plugin_class = 'course_plugins.Missing'\n"
    )
    load_config.cache_clear()
    with pytest.raises(ConfigError, match="cannot be imported"):
        late_plugin(load_config(tmp_path))
