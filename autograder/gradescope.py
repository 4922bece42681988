"""Gradescope packaging: one assignment's ``autograder.zip``, and what runs inside it.

:func:`build_package` writes the zip an instructor uploads. Gradescope unpacks it
into ``/autograder/source``, runs ``setup.sh`` once (as root) when it builds the
image, and for every submission runs ``/autograder/run_autograder`` (a copy of
the zip's) in ``/autograder``, which calls :func:`run_submission` here: it finds
the one notebook in ``/autograder/submission``, grades it with
:func:`autograder.batch.grade_batch` in a temporary folder, and writes
``/autograder/results/results.json``. Whatever goes wrong, a valid
``results.json`` comes out (score 0 and a message for the student).

Inside the container everything runs as root. The trusted judge stays root;
student code runs in the sandbox worker as an unprivileged user: inside
bubblewrap where the container allows it (a uid of its own that sees none of the
grader's files), otherwise as ``autograder-student`` (created by ``setup.sh``;
``$AUTOGRADER_SANDBOX_USER`` names another), with rlimits, after
:func:`lock_down` has made the hidden suite, the references, the rubric and the
results folder root-only. The ``output`` shown to the student says which.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from autograder.course import Course
from autograder.results import SubmissionResult, TestResult, write_json_atomic

DEFAULT_ROOT = "/autograder"
DEFAULT_VENV = "/opt/cnn-autograder/venv"
DEFAULT_USER = "autograder-student"  # setup.sh creates it
FALLBACK_UID = 64999  # when that user is missing: a uid with no account and no files
USER_ENV = "AUTOGRADER_SANDBOX_USER"  # read by autograder/sandbox.py as well
STUDENT = "submission"  # the id a Gradescope submission is graded under
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same course gives the same zip

# Read by the sandbox user (rlimits mode): the worker's server code. Everything
# else under the course root is root-only once lock_down has run.
PUBLIC_DIRS = ("autograder/child",)

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image (Ubuntu).
# It installs the pinned Python packages into a venv, bubblewrap (the sandbox) and
# setpriv, and creates the unprivileged user that student code runs as.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${AUTOGRADER_VENV:-__VENV__}"
SANDBOX_USER="__USER__"
export DEBIAN_FRONTEND=noninteractive

apt-get update -qq
apt-get install -y -qq --no-install-recommends bubblewrap util-linux ca-certificates

# Python 3.11 or newer (Ubuntu 22.04 ships 3.10 as python3 and 3.11 as python3.11).
PYTHON=""
for candidate in python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
done
if [ -z "$PYTHON" ]; then
    apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv
    PYTHON=python3.11
fi
apt-get install -y -qq --no-install-recommends "${PYTHON}-venv" || true

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r "$HERE/requirements.lock"
chmod -R a+rX "$VENV"  # the sandbox user runs this Python

if ! id -u "$SANDBOX_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$SANDBOX_USER"
fi

# Only root may read the hidden tests, the references and the rubric (run_autograder
# does this again before every submission).
cd "$HERE" && "$VENV/bin/python" -m autograder.gradescope lock --root "$(dirname "$HERE")"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this for every submission, as root, in /autograder. It grades the
# one notebook in $AUTOGRADER_ROOT/submission and writes results/results.json;
# when anything fails, results.json still comes out, with score 0 and the reason.
set -u
ROOT="${AUTOGRADER_ROOT:-__ROOT__}"
PYTHON="${AUTOGRADER_PYTHON:-__VENV__/bin/python}"
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
rm -f "$RESULTS"
status=0
cd "$ROOT/source" && "$PYTHON" -m autograder.gradescope run __ASSIGNMENT__ --root "$ROOT" \
    --sandbox "${AUTOGRADER_SANDBOX:-auto}" --device "${AUTOGRADER_DEVICE:-auto}" || status=$?
if [ ! -s "$RESULTS" ]; then
    cat > "$RESULTS" <<EOF
{"score": 0, "output": "The autograder could not run (exit status $status), so this submission was not graded. This is not a problem with your notebook: please tell the course staff.", "output_format": "text", "visibility": "visible", "stdout_visibility": "hidden", "tests": []}
EOF
fi
exit 0
"""


# --------------------------------------------------------------------------- building


def _tree(folder: Path, prefix: str, skip=lambda path: False) -> dict[str, Path]:
    """``{zip name: file}`` for the files under ``folder`` (links followed, caches left out)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part in ("__pycache__", ".ipynb_checkpoints", "data") for part in relative.parts):
            continue
        if path.is_file() and path.suffix != ".pyc" and not skip(relative):
            found[f"{prefix}/{relative.as_posix()}"] = path
    return found


def package_contents(course: Course, assignment: str) -> dict[str, Path]:
    """The course files one assignment's grading needs, by their path in the zip."""
    package = Path(__file__).resolve().parent
    suites = course.root / "autograder" / "suites"
    suite = suites / f"test_{assignment}.py"
    release = course.release_dir / assignment
    for needed, how in (
        (suite, "its hidden suite"),
        (course.release_notebook(assignment), "its release (run `release` first)"),
    ):
        if not needed.is_file():
            raise ValueError(f"{assignment}: {how} is missing: {needed}")

    def package_skip(relative: Path) -> bool:
        # other assignments' suites and the catalogue of plausible bugs stay out
        return relative.parts[0] in ("suites", "mutants")

    files = _tree(package, "autograder", package_skip)
    for name in ("__init__.py", "conftest.py", suite.name):
        if (suites / name).is_file():
            files[f"autograder/suites/{name}"] = suites / name
    files[f"rubrics/{assignment}.yaml"] = course.rubric_path(assignment)
    files.update(_tree(course.root / "solutions", "solutions"))
    files.update(
        _tree(
            course.source_dir / assignment, f"source/{assignment}", lambda r: r.parts[0] == "cnnkit"
        )
    )
    files.update(_tree(course.helper_module, "source/cnnkit"))
    files.update(_tree(release, f"release/{assignment}"))
    for name in ("nbgrader_config.py", "requirements.lock", "pyproject.toml"):
        if (course.root / name).is_file():
            files[name] = course.root / name
    if "requirements.lock" not in files:
        raise ValueError(f"no requirements.lock in {course.root}: setup.sh installs from it")
    return files


def _script(template: str, assignment: str) -> str:
    return (
        template.replace("__ASSIGNMENT__", assignment)
        .replace("__ROOT__", DEFAULT_ROOT)
        .replace("__VENV__", DEFAULT_VENV)
        .replace("__USER__", DEFAULT_USER)
    )


def _add(archive: zipfile.ZipFile, name: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def build_package(assignment: str, out_dir: Path, *, course: Course | None = None) -> Path:
    """Write OUT_DIR/autograder.zip: a Gradescope autograder for one assignment.

    Upload the zip as the assignment's autograder ("Ubuntu" base image). It holds
    setup.sh (installs requirements.lock into a venv, bubblewrap and setpriv, and
    creates the unprivileged user 'autograder-student'), run_autograder (grades
    the one notebook a student submits and writes results/results.json in
    Gradescope's format: a missing, extra or unreadable notebook scores 0 with a
    message) and the grader with this assignment's rubric, hidden suite,
    references, source and release. Student code runs as an unprivileged user
    that cannot read the hidden tests or write the results, inside bubblewrap
    where the container allows it; every result says which isolation ran.
    """
    course = course or Course.here()
    course.require(assignment)
    files = package_contents(course, assignment)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "autograder.zip"
    handle, temporary = tempfile.mkstemp(dir=out_dir, prefix=".autograder-", suffix=".zip")
    os.close(handle)
    try:
        with zipfile.ZipFile(temporary, "w") as archive:
            _add(archive, "setup.sh", _script(SETUP_SH, assignment).encode(), 0o755)
            _add(archive, "run_autograder", _script(RUN_AUTOGRADER, assignment).encode(), 0o755)
            for name, path in sorted(files.items()):
                _add(archive, name, path.read_bytes(), 0o644)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------- inside Gradescope


def lock_down(root: Path) -> None:
    """Make the grader's files root-only (as root): all but the worker's server code.

    ``root`` is ``/autograder``: ``source/`` (the unpacked zip) keeps only
    traversal for others, ``results/`` and the submission metadata become
    root-written only. Idempotent; does nothing unless run as root.
    """
    if os.geteuid() != 0:
        return
    source = root / "source"
    for folder in (root, source, source / "autograder"):
        if folder.is_dir():
            os.chmod(folder, 0o711)  # others may pass through, not list
    keep = {source / "autograder", *(source / name for name in PUBLIC_DIRS)}
    for folder in (source, source / "autograder"):
        for entry in folder.iterdir() if folder.is_dir() else ():
            if entry in keep or entry.is_symlink():
                continue
            os.chmod(entry, 0o700 if entry.is_dir() else 0o600)
    for name in PUBLIC_DIRS:
        for path in [source / name, *(source / name).rglob("*")]:
            if not path.is_symlink():
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
    results = root / "results"
    results.mkdir(exist_ok=True)
    os.chown(results, 0, 0)
    os.chmod(results, 0o755)
    for name in ("submission_metadata.json", "run_autograder"):
        if (root / name).is_file():
            os.chmod(root / name, 0o700 if name == "run_autograder" else 0o600)


def choose_user() -> tuple[str, str]:
    """``(value for $AUTOGRADER_SANDBOX_USER, words for the student)`` when run as root."""
    name = os.environ.get(USER_ENV, "").strip() or DEFAULT_USER
    if name.isdigit():
        return name, f"the unprivileged uid {name}"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return str(FALLBACK_UID), (
            f"the unprivileged uid {FALLBACK_UID} (no user '{name}' here: setup.sh did not run)"
        )
    return name, f"the unprivileged user '{name}' (uid {entry.pw_uid})"


def user_can_run_python(user: str) -> str | None:
    """None when ``user`` can start this Python and read its packages, else why not."""
    from autograder.sandbox import drop_to_user_command, sandbox_user

    previous = os.environ.get(USER_ENV)
    os.environ[USER_ENV] = user
    try:
        ids = sandbox_user()
    except Exception as exc:
        return str(exc)
    finally:
        if previous is None:
            os.environ.pop(USER_ENV, None)
        else:
            os.environ[USER_ENV] = previous
    probe = "import os, sys; [os.listdir(p) for p in sys.path if p.endswith('-packages')]"
    command = [*drop_to_user_command(ids), sys.executable, "-I", "-c", probe]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1][:300]
    return None


def find_notebook(folder: Path) -> tuple[Path | None, str | None]:
    """The one ``.ipynb`` under ``folder`` (any depth, any case), or None and why."""
    if not folder.is_dir():
        return None, f"there is no submission folder ({folder})"
    found = sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() == ".ipynb"
        and path.is_file()
        and ".ipynb_checkpoints" not in path.parts
        and not any(part.startswith("__MACOSX") for part in path.parts)
    )
    if len(found) == 1:
        return found[0], None
    names = [path.relative_to(folder).as_posix() for path in found]
    if not found:
        others = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        listed = ", ".join(others[:10]) if others else "nothing"
        return None, f"no Jupyter notebook (.ipynb) was submitted (found: {listed})"
    return None, (
        f"{len(found)} notebooks were submitted ({', '.join(names[:10])}); "
        "submit exactly one .ipynb file"
    )


def fatal_results(course: Course, assignment: str, message: str, sandbox: str) -> dict:
    """Score 0 on every rubric check with ``message``, without starting a judge."""
    from autograder.rubric import load_rubric

    rubric = load_rubric(course.rubric_path(assignment))
    tests = [
        TestResult(
            check.id,
            check.part,
            f"{rubric.part(check.part).title}: {check.description}",
            0.0,
            check.points,
            False,
            f"not graded: {message}",
        )
        for check in rubric.checks
    ]
    result = SubmissionResult(
        assignment,
        STUDENT,
        0.0,
        rubric.total_points,
        tests,
        sandbox=sandbox,
        device="none (nothing was run)",
        fatal=message,
    )
    return result.to_gradescope()


def minimal_results(message: str) -> dict:
    """The smallest valid results.json: when even the rubric cannot be read."""
    return {
        "score": 0.0,
        "output": f"This submission could not be graded: {message}",
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [],
    }


def _weights_file(notebook: Path, course: Course, assignment: str) -> Path | None:
    """The weights file uploaded with the notebook, where the assignment takes one."""
    from autograder.rubric import load_rubric
    from autograder.submissions import weights_beside

    spec = load_rubric(course.rubric_path(assignment)).weights
    return weights_beside(notebook, spec.file) if spec is not None else None


def _grade(notebook: Path, course: Course, assignment: str, sandbox: str, device: str) -> dict:
    from autograder.batch import grade_batch

    with tempfile.TemporaryDirectory(prefix="gradescope-") as scratch:
        folder = Path(scratch) / "submissions"
        folder.mkdir()
        shutil.copyfile(notebook, folder / f"{STUDENT}.ipynb")
        weights = _weights_file(notebook, course, assignment)
        if weights is not None:
            shutil.copyfile(weights, folder / f"{STUDENT}{weights.suffix}")
        out = Path(scratch) / "graded"
        summary = grade_batch(
            assignment,
            folder,
            out,
            workers=1,
            device=device,
            gradebook=f"sqlite:///{Path(scratch) / 'gradebook.db'}",
            force=True,
            sandbox=sandbox,
            progress=False,
            course=course,
        )
        path = out / STUDENT / "results.json"
        if not path.is_file():
            problems = "; ".join(summary.problems) or "the grader wrote no result"
            raise RuntimeError(problems)
        return json.loads(path.read_text())


def _me() -> str:
    uid = os.geteuid()
    try:
        return f"user '{pwd.getpwuid(uid).pw_name}' (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def isolation_words(sandbox: str, user_words: str) -> str:
    """Which user student code ran as, from the sandbox that actually ran."""
    root = os.geteuid() == 0
    if sandbox.startswith("bubblewrap"):
        if root:
            return (
                "an unprivileged uid of its own (61000 or above) inside bubblewrap, "
                "which sees none of the grader's files"
            )
        return f"the grader's own {_me()}, without privileges, inside bubblewrap"
    if root:
        return (
            f"{user_words}, with resource limits only: it cannot read the hidden tests, "
            "the references or the rubric, nor write the results, but it has the network"
        )
    return f"the grader's own {_me()}, with resource limits only: it could read the grader's files"


def run_submission(
    root: Path, assignment: str, *, sandbox: str = "auto", device: str = "auto"
) -> dict:
    """Grade ``root/submission``'s notebook; write and return ``root/results/results.json``."""
    started = time.monotonic()
    root = Path(root)
    course = Course(root / "source")
    user_words = ""
    try:
        lock_down(root)
        if os.geteuid() == 0:
            user, user_words = choose_user()
            os.environ[USER_ENV] = user  # the judges' workers (rlimits mode) drop to it
        notebook, problem = find_notebook(root / "submission")
        if notebook is not None:
            try:
                json.loads(notebook.read_bytes())
            except (OSError, ValueError) as exc:
                problem = f"{notebook.name} is not a readable notebook ({str(exc)[:200]})"
        if problem is None and os.geteuid() == 0:
            from autograder.sandbox import resolve_sandbox

            if resolve_sandbox(sandbox).mode != "bubblewrap":
                why = user_can_run_python(os.environ[USER_ENV])
                if why is not None:
                    problem = (
                        "the grader is misconfigured: the sandbox user cannot run its Python "
                        f"({why}); student code is never run as root"
                    )
        if problem is not None:
            data = fatal_results(course, assignment, problem, "not started (nothing was run)")
        else:
            data = _grade(notebook, course, assignment, sandbox, device)
            ran = data.get("extra_data", {}).get("sandbox", "")
            words = isolation_words(ran, user_words)
            lines = data["output"].split("\n")
            if data.get("extra_data", {}).get("fatal"):  # its reason stays the first line
                lines.insert(1, f"Student code, where any ran, ran as: {words}.")
            else:
                lines.insert(0, f"Student code ran as: {words}.")
            data["output"] = "\n".join(lines)
            data["extra_data"]["sandbox_user"] = words
            data["extra_data"]["submitted_file"] = notebook.relative_to(root).as_posix()
    except Exception as exc:
        message = f"the grader failed ({type(exc).__name__}: {str(exc)[:300]})"
        print(f"ERROR: {message}", file=sys.stderr)
        try:
            data = fatal_results(course, assignment, message, "not started")
        except Exception:
            data = minimal_results(message)
    data["execution_time"] = round(time.monotonic() - started, 3)
    write_json_atomic(root / "results" / "results.json", data)
    os.chmod(root / "results" / "results.json", 0o644)
    print(f"{assignment}: {data['score']:g} points; results in {root / 'results' / 'results.json'}")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.gradescope")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="grade the submission (what run_autograder calls)")
    run.add_argument("assignment")
    run.add_argument("--root", default=os.environ.get("AUTOGRADER_ROOT", DEFAULT_ROOT))
    run.add_argument("--sandbox", default="auto", choices=("auto", "bubblewrap", "rlimits"))
    run.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    lock = commands.add_parser("lock", help="make the grader's files root-only (setup.sh)")
    lock.add_argument("--root", default=os.environ.get("AUTOGRADER_ROOT", DEFAULT_ROOT))
    args = parser.parse_args(argv)
    if args.command == "lock":
        lock_down(Path(args.root))
        return 0
    run_submission(Path(args.root), args.assignment, sandbox=args.sandbox, device=args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
