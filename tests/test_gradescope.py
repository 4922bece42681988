"""The Gradescope package: its layout, and run_autograder in a simulated /autograder tree.

Each scenario unpacks the zip into its own ``AUTOGRADER_ROOT`` (``source/``,
``submission/``, ``results/``) and runs ``run_autograder`` there with this
Python, as Gradescope would after ``setup.sh`` (which is only checked with
``bash -n`` here). ``results.json`` is validated against Gradescope's documented
schema. As root (CI), hostile submissions check that student code can neither
read the hidden suite nor write the results, in the weaker rlimits mode (an
unprivileged uid, no bubblewrap) and in bubblewrap where it works here.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import pytest

from autograder.course import Course
from autograder.gradescope import FALLBACK_UID, build_package
from autograder.mutants import edit_cell
from autograder.rubric import load_rubric
from autograder.sandbox import check_bubblewrap

ASSIGNMENT = "m06_02_convolution"
COURSE = Course.here()
RUBRIC = load_rubric(COURSE.rubric_path(ASSIGNMENT))
PYTHON = sys.executable
ROOT_USER = os.geteuid() == 0

# Gradescope's results.json ("Autograder Specifications", output format).
FORMATS = ["text", "html", "simple_format", "md", "ansi"]
VISIBILITY = ["hidden", "after_due_date", "after_published", "visible"]
NUMBER = {"type": "number"}
TEST_SCHEMA = {
    "type": "object",
    "properties": {
        "score": NUMBER,
        "max_score": NUMBER,
        "status": {"enum": ["passed", "failed"]},
        "name": {"type": "string"},
        "name_format": {"enum": FORMATS},
        "number": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)*$"},
        "output": {"type": "string"},
        "output_format": {"enum": FORMATS},
        "tags": {"type": "array", "items": {"type": "string"}},
        "visibility": {"enum": VISIBILITY},
        "extra_data": {"type": "object"},
    },
    "required": ["score", "max_score", "status", "name", "number", "output"],
    "additionalProperties": False,
}
RESULTS_SCHEMA = {
    "type": "object",
    "properties": {
        "score": NUMBER,
        "execution_time": NUMBER,
        "output": {"type": "string"},
        "output_format": {"enum": FORMATS},
        "test_output_format": {"enum": FORMATS},
        "test_name_format": {"enum": FORMATS},
        "visibility": {"enum": VISIBILITY},
        "stdout_visibility": {"enum": VISIBILITY},
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": TEST_SCHEMA},
        "leaderboard": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "value": NUMBER,
                    "order": {"enum": ["asc", "desc"]},
                },
                "required": ["name", "value"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["score", "output"],
    "additionalProperties": False,
}


def validate(data: dict) -> None:
    jsonschema.validate(data, RESULTS_SCHEMA)
    if data.get("tests"):
        assert abs(data["score"] - sum(t["score"] for t in data["tests"])) < 1e-6
        numbers = [t["number"] for t in data["tests"]]
        assert len(set(numbers)) == len(numbers), numbers


# --------------------------------------------------------------------------- the package


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return build_package(ASSIGNMENT, tmp_path_factory.mktemp("package"))


def test_zip_holds_the_scripts_and_only_this_assignment(package):
    with zipfile.ZipFile(package) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        for script in ("setup.sh", "run_autograder"):
            assert (infos[script].external_attr >> 16) & 0o111, f"{script} is not executable"
        setup = archive.read("setup.sh").decode()
        run = archive.read("run_autograder").decode()
    names = set(infos)
    assert {
        f"autograder/suites/test_{ASSIGNMENT}.py",
        "autograder/suites/conftest.py",
        "autograder/child/server.py",
        f"rubrics/{ASSIGNMENT}.yaml",
        "solutions/convolution.py",
        f"source/{ASSIGNMENT}/{ASSIGNMENT}.ipynb",
        "source/cnnkit/__init__.py",
        f"release/{ASSIGNMENT}/{ASSIGNMENT}.ipynb",
        f"release/{ASSIGNMENT}/cnnkit/__init__.py",
        "nbgrader_config.py",
        "requirements.lock",
    } <= names
    others = [a for a in COURSE.assignments() if a != ASSIGNMENT]
    assert not [n for n in names if any(other in n for other in others)]
    assert not [n for n in names if "mutants" in n or "__pycache__" in n or n.endswith(".pyc")]
    assert "requirements.lock" in setup and "bubblewrap" in setup and "useradd" in setup
    assert "apt-get install" in setup and "setpriv" in setup
    assert f"run {ASSIGNMENT}" in run and "AUTOGRADER_PYTHON" in run and "AUTOGRADER_ROOT" in run
    for script in (setup, run):
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_the_same_course_gives_the_same_zip(package, tmp_path):
    assert build_package(ASSIGNMENT, tmp_path).read_bytes() == package.read_bytes()


def test_unknown_assignment_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown assignment"):
        build_package("m99_nothing", tmp_path)


# --------------------------------------------------------------------------- running it

UNPRIVILEGED = ["setpriv", f"--reuid={FALLBACK_UID}", f"--regid={FALLBACK_UID}", "--clear-groups"]
# A private mount namespace that lets others through one closed folder (pyenv under a
# 0700 /root, say) to the Python installation only, as Gradescope's /usr Python is.
EXPOSE = (
    'mount --bind "$1" "$3" && mount -t tmpfs -o mode=0711 none "$2" && mkdir -p "$1" '
    '&& mount --bind "$3" "$1" && shift 3 && exec "$@"'
)


def _unprivileged_python_works(prefix: list[str]) -> bool:
    probe = [*UNPRIVILEGED, "--", PYTHON, "-I", "-c", "import numpy"]
    try:
        return subprocess.run([*prefix, *probe], capture_output=True, cwd="/").returncode == 0
    except OSError:
        return False


@functools.cache
def python_prefix() -> list[str] | None:
    """A command prefix under which an unprivileged uid can run this Python, or None."""
    if not ROOT_USER or _unprivileged_python_works([]):
        return []
    target = Path(PYTHON).resolve()
    closed = [p for p in reversed(target.parents) if not p.stat().st_mode & 0o001]
    if not closed or shutil.which("unshare") is None:
        return None
    entry = target.parents[len(target.parents) - len(closed[0].parts) - 1]
    stash = tempfile.mkdtemp(prefix="gradescope-python-")
    atexit.register(os.rmdir, stash)
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", EXPOSE, "sh"]
    prefix += [str(entry), str(closed[0]), stash]
    return prefix if _unprivileged_python_works(prefix) else None


def hostile_notebook(root: Path) -> bytes:
    """The solution, with a first answer cell that tries to read the hidden suite and to
    overwrite results.json, and reports what happened through that part's check."""
    suite = root / "source" / "autograder" / "suites" / f"test_{ASSIGNMENT}.py"
    results = root / "results" / "results.json"
    attack = f"""

import os as _os
_report = []
try:
    _report.append("READ-OK " + open({str(suite)!r}).read()[:40])
except Exception as _exc:
    _report.append("READ-FAILED " + type(_exc).__name__)
try:
    with open({str(results)!r}, "w") as _out:
        _out.write('{{"score": 999, "output": "forged"}}')
    _report.append("WRITE-OK")
except Exception as _exc:
    _report.append("WRITE-FAILED " + type(_exc).__name__)
_report.append("UID %d" % _os.getuid())


def {RUBRIC.parts[0].function}(*args, **kwargs):
    raise RuntimeError("HOSTILE " + " | ".join(_report))
"""
    return edit_cell(
        COURSE.source_notebook(ASSIGNMENT), RUBRIC.parts[0].answer_cell, lambda s: s + attack
    )


def _solution(root):
    return {"m06_02_convolution.ipynb": COURSE.source_notebook(ASSIGNMENT).read_bytes()}


SCENARIOS = {
    # name: (files in submission/, sandbox mode, needs root)
    "solution": (_solution, "auto", False),
    "release": (
        lambda root: {"hw.ipynb": COURSE.release_notebook(ASSIGNMENT).read_bytes()},
        "auto",
        False,
    ),
    "missing": (lambda root: {"answers.py": b"print(1)\n"}, "auto", False),
    "extra": (lambda root: {**_solution(root), "sub/copy.IPYNB": b"{}"}, "auto", False),
    "broken": (lambda root: {"nb.ipynb": b'{"cells": [ half a notebook'}, "auto", False),
    "hostile_rlimits": (lambda root: {"nb.ipynb": hostile_notebook(root)}, "rlimits", True),
    "hostile_bubblewrap": (
        lambda root: {"nb.ipynb": hostile_notebook(root)},
        "bubblewrap",
        True,
    ),
}


def run_scenario(package: Path, name: str) -> tuple[Path, dict, str]:
    make, sandbox, _ = SCENARIOS[name]
    root = Path(tempfile.mkdtemp(prefix=f"gradescope-{name}-"))  # /tmp: others may pass
    os.chmod(root, 0o755)
    for folder in ("source", "submission", "results"):
        (root / folder).mkdir()
    with zipfile.ZipFile(package) as archive:
        archive.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    os.chmod(root / "run_autograder", 0o755)
    for relative, data in make(root).items():
        (root / "submission" / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / "submission" / relative).write_bytes(data)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": PYTHON}
    env["AUTOGRADER_SANDBOX"] = sandbox
    env.pop("AUTOGRADER_SANDBOX_USER", None)
    done = subprocess.run(
        [*(python_prefix() or []), str(root / "run_autograder")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((root / "results" / "results.json").read_text())
    return root, data, done.stdout + done.stderr


@pytest.fixture(scope="module")
def runs(package):
    """Every scenario this machine can run, two at a time (one judge and worker each)."""
    bubblewrap = check_bubblewrap().mode == "bubblewrap"
    names = []
    for name, (_, sandbox, needs_root) in SCENARIOS.items():
        if needs_root and not ROOT_USER:
            continue
        if sandbox == "bubblewrap" and not bubblewrap:
            continue
        if ROOT_USER and python_prefix() is None and (sandbox == "rlimits" or not bubblewrap):
            continue  # student code would have no unprivileged Python to run
        names.append(name)
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(names, pool.map(lambda name: run_scenario(package, name), names)))
    yield done
    for root, _, _ in done.values():
        shutil.rmtree(root, ignore_errors=True)


def scenario(runs, name: str) -> tuple[Path, dict, str]:
    if name not in runs:
        pytest.skip(f"{name} cannot run here (needs root, bubblewrap or an unprivileged Python)")
    return runs[name]


@pytest.mark.slow
def test_the_solution_gets_full_marks_in_gradescope_format(runs):
    root, data, log = scenario(runs, "solution")
    validate(data)
    assert data["score"] == RUBRIC.total_points, log
    assert all(t["status"] == "passed" for t in data["tests"])
    expected = [
        f"{p}.{c}" for p, part in enumerate(RUBRIC.parts, 1) for c, _ in enumerate(part.checks, 1)
    ]
    assert [t["number"] for t in data["tests"]] == expected
    assert [t["extra_data"]["check"] for t in data["tests"]] == [c.id for c in RUBRIC.checks]
    assert data["output"].startswith("Student code ran as: ")
    assert "Sandbox: " in data["output"]
    assert not list((root / "source").rglob("*.db")), "nothing is written into the zip tree"
    assert not (root / "source" / "autograded").exists()


@pytest.mark.slow
def test_the_release_scores_zero(runs):
    _, data, log = scenario(runs, "release")
    validate(data)
    assert data["score"] == 0, log
    assert len(data["tests"]) == len(RUBRIC.checks)
    assert "NotImplementedError" in data["tests"][0]["output"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, message",
    [
        ("missing", "no Jupyter notebook (.ipynb) was submitted (found: answers.py)"),
        ("extra", "2 notebooks were submitted"),
        ("broken", "nb.ipynb is not a readable notebook"),
    ],
)
def test_a_missing_extra_or_broken_notebook_scores_zero_with_a_message(runs, name, message):
    _, data, log = scenario(runs, name)
    validate(data)
    assert data["score"] == 0, log
    assert data["output"].startswith("This submission could not be graded: ")
    assert message in data["output"], data["output"]
    assert len(data["tests"]) == len(RUBRIC.checks)
    assert all(message in t["output"] for t in data["tests"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hostile_rlimits", "hostile_bubblewrap"])
def test_student_code_cannot_read_the_suite_or_write_the_results(runs, name):
    _, data, log = scenario(runs, name)
    validate(data)
    first = data["tests"][0]
    assert "HOSTILE" in first["output"], first["output"]
    assert "READ-FAILED" in first["output"] and "READ-OK" not in first["output"]
    assert "WRITE-FAILED" in first["output"] and "WRITE-OK" not in first["output"]
    assert "UID 0 " not in first["output"] + " "
    # the file is the grader's: every other part still passes, this one's check fails
    assert data["score"] == RUBRIC.total_points - RUBRIC.parts[0].points, log
    assert data["extra_data"]["assignment"] == ASSIGNMENT
    if name == "hostile_rlimits":
        assert f"UID {FALLBACK_UID}" in first["output"]
        assert f"unprivileged uid {FALLBACK_UID}" in data["output"]
        assert "WEAKER MODE" in data["output"]
    else:
        assert "inside bubblewrap" in data["output"]
