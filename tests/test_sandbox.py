"""Is student code contained: no view of the course's secrets, no network, bounded
resources, and a batch that survives hangs and crashes?"""

from __future__ import annotations

import pytest
import torch

from autograder.course import Course
from autograder.rubric import Limits
from autograder.sandbox import SandboxInfo, Worker, execute

LIMITS = Limits(
    cell_seconds=5,
    check_seconds=3,
    submission_seconds=60,
    memory_mb=1024,
    cpu_seconds=20,
    processes=16,
    file_size_mb=1,
)
REPO = Course.here().root


@pytest.fixture(scope="module", params=["bubblewrap", "rlimits"])
def worker(request, sandbox_info, tmp_path_factory):
    if request.param == "bubblewrap" and sandbox_info.mode != "bubblewrap":
        pytest.skip(f"bubblewrap does not work here: {sandbox_info.reason}")
    info = sandbox_info if request.param == "bubblewrap" else SandboxInfo("rlimits", "test")
    worker = Worker(7, "cpu", LIMITS, info)
    worker.start()
    yield worker
    worker.kill()


def run(worker, cells: dict[str, str], probes: list[dict], files=None):
    cell_list = [{"id": key, "source": value} for key, value in cells.items()]
    return execute(worker, cell_list, probes, files or {}, job_id=1)


def call(function, *args, **extra):
    return {"kind": "call", "function": function, "args": args, "kwargs": {}, **extra}


def test_results_come_back_and_helper_modules_are_importable(worker):
    out = run(
        worker,
        {"a": "import helper\ndef f(x):\n    return x * helper.VALUE\n"},
        [call("f", torch.ones(2))],
        files={"helper.py": "VALUE = 42\n"},
    )
    assert out.results[0]["ok"] and torch.equal(
        out.results[0]["value"]["__tensor__"], torch.full((2,), 42.0)
    )


def test_a_hanging_check_costs_only_itself(worker):
    cells = {"a": "def hang(x):\n    while True:\n        pass\ndef ok(x):\n    return x + 1\n"}
    restarts = worker.restarts
    out = run(worker, cells, [call("ok", 1), call("hang", 1, wall_seconds=1), call("ok", 2)])
    assert out.results[0]["value"] == 2 and out.results[2]["value"] == 3
    assert "time limit (1 s) exceeded" in out.results[1]["error"]
    assert worker.restarts == restarts, (
        "the warm server killed the child; no new sandbox was needed"
    )


def test_exiting_the_process_costs_only_that_cell(worker):
    cells = {"bad": "import os\nos._exit(0)\n", "good": "def ok():\n    return 'fine'\n"}
    out = run(worker, cells, [call("ok")])
    assert "ended unexpectedly" in out.cell_errors["bad"]
    assert out.results[0]["value"] == "fine"


def test_sys_exit_and_keyboard_interrupt_are_ordinary_errors(worker):
    cells = {"a": "import sys\ndef f():\n    sys.exit(0)\ndef g():\n    raise KeyboardInterrupt\n"}
    out = run(worker, cells, [call("f"), call("g")])
    assert out.results[0]["error"].startswith("SystemExit") and out.results[1]["error"].startswith(
        "KeyboardInterrupt"
    )


def test_a_huge_allocation_fails_cleanly(worker):
    cells = {
        "a": "import torch\ndef big():\n    return torch.empty(50 * 2**30, dtype=torch.uint8).sum()\ndef small():\n    return 1\n"
    }
    out = run(worker, cells, [call("big"), call("small")])
    assert not out.results[0]["ok"] and out.results[1]["value"] == 1


def test_printing_is_bounded_and_its_tail_is_kept(worker):
    cells = {
        "a": "def shout():\n    for _ in range(10**6):\n        print('x' * 100)\n    return 'done'\n"
    }
    out = run(worker, cells, [call("shout")])
    assert not out.results[0]["ok"] or out.results[0]["value"] == "done"
    assert "x" * 50 in out.output_tail and len(out.output_tail) <= 2000


def test_a_daemon_does_not_outlive_its_submission(worker):
    spawn = "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
    run(worker, {"spawn": spawn}, [])
    count = "import os\ndef processes():\n    return len([p for p in os.listdir('/proc') if p.isdigit()])\n"
    out = run(worker, {"count": count}, [call("processes")])
    if worker.info.mode == "bubblewrap":  # a private PID namespace: init, the server and this child
        assert out.results[0]["value"] <= 3


def test_the_sandbox_hides_the_course_and_the_network(worker):
    if worker.info.mode != "bubblewrap":
        pytest.skip("only bubblewrap hides files and the network")
    probe = f"""
import os, socket
def look():
    seen = {{}}
    for path in [{str(REPO / "autograder")!r}, {str(REPO / "solutions")!r}, {str(REPO / "source")!r}, {str(REPO / "rubrics")!r}, '/etc/shadow', '/root/.bashrc', {str(REPO / ".git")!r}]:
        seen[path] = os.path.exists(path) and bool(os.listdir(path) if os.path.isdir(path) else open(path).read(1))
    try:
        socket.create_connection(('1.1.1.1', 53), timeout=2)
        seen['network'] = True
    except OSError:
        seen['network'] = False
    seen['uid'] = os.getuid()
    return seen
"""
    out = run(worker, {"a": probe}, [call("look")])
    seen = out.results[0]["value"]
    assert not any(v for k, v in seen.items() if k != "uid"), seen
    assert seen["uid"] != 0


def test_a_fork_bomb_is_bounded(worker):
    if worker.info.mode != "bubblewrap":
        pytest.skip("without a uid of its own the process limit would hit the grader too")
    bomb = "import os\ndef bomb():\n    n = 0\n    for _ in range(10000):\n        try:\n            if os.fork() == 0:\n                import time; time.sleep(30); os._exit(0)\n            n += 1\n        except OSError:\n            break\n    return n\n"
    out = run(worker, {"a": bomb}, [call("bomb", wall_seconds=10)])
    assert out.results[0]["ok"] and out.results[0]["value"] < LIMITS.processes + 5
