"""Does the CLI parse, delegate, and fail with a clear message on bad input?"""

from __future__ import annotations

import argparse
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


def grade_args(tmp_path, *extra: str) -> list[str]:
    submissions = tmp_path / "subs"
    submissions.mkdir(exist_ok=True)
    return ["grade", "m06_02_convolution", str(submissions), "--no-progress", *extra]


@pytest.mark.parametrize("workers", ["0", "-3", "two"])
def test_a_bad_worker_count_is_one_line_and_exit_2(tmp_path, capsys, workers):
    with pytest.raises(SystemExit) as stop:
        cli.main([*grade_args(tmp_path), "--out", str(tmp_path / "o"), "--workers", workers])
    assert stop.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


def test_a_folder_without_notebooks_is_an_error(tmp_path, capsys):
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "notes.txt").write_text("not a notebook")
    assert cli.main([*grade_args(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no notebooks in" in capsys.readouterr().err


def student_folder(tmp_path, course):
    args = grade_args(tmp_path)
    (tmp_path / "subs" / "amy.ipynb").write_bytes(
        course.release_notebook("m06_02_convolution").read_bytes()
    )
    return args


def test_an_unwritable_out_folder_is_one_line(tmp_path, capsys, course):
    args = student_folder(tmp_path, course)
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    assert cli.main([*args, "--out", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write to --out") and "Traceback" not in err


@pytest.mark.parametrize("url", ["not a url", "sqlite:////nonexistent-dir/deeper/grades.db"])
def test_a_bad_gradebook_url_is_one_line_before_grading(tmp_path, capsys, course, url):
    args = student_folder(tmp_path, course)
    assert cli.main([*args, "--out", str(tmp_path / "o"), "--gradebook", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --gradebook") and "Traceback" not in err
    assert not (tmp_path / "o" / "amy").exists()  # refused before anything was graded


def test_every_argument_of_every_command_has_help_and_every_command_an_example():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        assert "example" in (sub.epilog or ""), name
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.dest} has no help text"


def test_a_course_root_that_is_no_course_is_one_line(tmp_path, capsys):
    code = cli.main(
        ["--course", str(tmp_path), *grade_args(tmp_path), "--out", str(tmp_path / "o")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --course") and "Traceback" not in err


def test_the_command_line_runs_from_another_directory(tmp_path, course):
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "--course", str(course.root), "grade", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "cuda:N" in done.stdout
