"""Does the CLI parse, delegate, and fail with a clear message on bad input?"""

from __future__ import annotations

import subprocess
import sys

import pytest

from autograder import cli


def test_help_lists_the_commands():
    help_text = cli.build_parser().format_help()
    for command in ("release", "grade", "demo"):
        assert command in help_text


def test_grade_arguments_have_the_documented_defaults():
    args = cli.build_parser().parse_args(["grade", "m06_02_convolution", "subs", "--out", "o"])
    assert (args.workers, args.device, args.gradebook, args.force, args.sandbox) == (
        2,
        "auto",
        None,
        False,
        "auto",
    )


def test_unknown_assignment_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["grade", "m99_nothing", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "unknown assignment 'm99_nothing'" in capsys.readouterr().err


def test_missing_submissions_folder_is_a_clear_error(tmp_path, capsys):
    assert (
        cli.main(
            [
                "grade",
                "m06_02_convolution",
                str(tmp_path / "nope"),
                "--out",
                str(tmp_path / "o"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "no folder of submissions" in capsys.readouterr().err


def test_bad_device_is_refused_by_argparse():
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["grade", "x", "y", "--out", "o", "--device", "tpu"])


def test_module_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "grade" in done.stdout
