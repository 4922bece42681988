"""Is student code contained: no view of the course's secrets, no network, bounded
resources, fresh state per submission, and a session that survives hangs and crashes?"""

from __future__ import annotations

import time

import pytest
import torch

from autograder.course import Course
from autograder.remote import CallContext, SandboxLimit, StaleHandle, Student, StudentError
from autograder.rubric import Limits
from autograder.sandbox import SandboxInfo, SandboxSession, Worker

LIMITS = Limits(
    cell_cpu_seconds=5,
    call_cpu_seconds=3,
    submission_seconds=120,
    memory_mb=1024,
    cpu_seconds=30,
    processes=16,
    file_size_mb=1,
)
REPO = Course.here().root


@pytest.fixture(scope="module", params=["bubblewrap", "rlimits"])
def worker(request, sandbox_info):
    if request.param == "bubblewrap" and sandbox_info.mode != "bubblewrap":
        pytest.skip(f"bubblewrap does not work here: {sandbox_info.reason}")
    info = sandbox_info if request.param == "bubblewrap" else SandboxInfo("rlimits", "test")
    worker = Worker(7, "cpu", LIMITS, info)
    worker.start()
    yield worker
    worker.kill()


def session(
    worker, cells: dict[str, str], files=None, cpu: float = 3
) -> tuple[SandboxSession, Student]:
    cell_list = [{"id": key, "source": value} for key, value in cells.items()]
    running = SandboxSession(worker, cell_list, files or {})
    running.context = CallContext(cpu_seconds=cpu, wall_seconds=3 * cpu + 10)
    return running, Student(running)


def test_results_come_back_and_helper_modules_are_importable(worker):
    running, student = session(
        worker,
        {"a": "import helper\ndef f(x):\n    return x * helper.VALUE\n"},
        files={"helper.py": "VALUE = 42\n"},
    )
    assert torch.equal(student.f(torch.ones(2)), torch.full((2,), 42.0))
    running.close()


def test_helper_packages_arrive_with_their_folders_and_stay_inside_the_job(worker):
    files = {
        "pkg/__init__.py": "from .inner import VALUE\n",
        "pkg/inner.py": "VALUE = 7\n",
        "../../escape.py": "VALUE = 1\n",  # no path leaves the job's folder
    }
    cells = {"a": "import os, pkg\ndef f():\n    return pkg.VALUE, os.path.exists('escape.py')\n"}
    running, student = session(worker, cells, files=files)
    assert student.f() == (7, True)
    running.close()


def test_binary_files_arrive_byte_for_byte(worker):
    """A submitted weights file travels as bytes, not text."""
    blob = bytes(range(256)) * 3
    running, student = session(
        worker,
        {"a": "def read(path):\n    return list(open(path, 'rb').read())\n"},
        files={"submitted/model.pt": blob},
    )
    assert student.read("submitted/model.pt") == list(blob)
    running.close()


def test_the_cpu_clock_is_the_servers_and_counts_the_work_of_each_call(worker):
    """``student.cpu_seconds()`` moves with the CPU a call burns, not with the wall clock,
    and a child that patches its own clocks cannot move it."""
    running, student = session(
        worker,
        {
            "a": (
                "import time\n"
                "time.process_time = time.perf_counter = time.monotonic = lambda: 0.0\n"
                "def burn(n):\n"
                "    total = 0\n"
                "    for i in range(n):\n"
                "        total += i * i\n"
                "    return total\n"
                "def nap(seconds):\n"
                "    time.sleep(seconds)\n"
                "    return 0\n"
            )
        },
    )
    student.burn(10)
    start = student.cpu_seconds()
    student.burn(4_000_000)
    burned = student.cpu_seconds() - start
    start = student.cpu_seconds()
    student.nap(0.5)
    napped = student.cpu_seconds() - start
    running.close()
    assert burned > 0.05, burned
    assert napped < 0.05, napped


def test_work_handed_to_a_helper_process_still_counts(worker):
    """A child that forks a helper at import time and has it do each call's work (the
    parent only waits on a pipe) is charged for the helper's CPU: latency checks see it."""
    cells = {
        "a": (
            "import os\n"
            "requests, jobs = os.pipe()\n"
            "results, answers = os.pipe()\n"
            "if os.fork() == 0:  # the helper: never reaped while the job runs\n"
            "    while True:\n"
            "        n = int(os.read(requests, 32))\n"
            "        total = 0\n"
            "        for i in range(n):\n"
            "            total += i * i\n"
            "        os.write(answers, b'1')\n"
            "def burn_elsewhere(n):\n"
            "    os.write(jobs, str(n).encode())\n"
            "    return int(os.read(results, 1))\n"
        )
    }
    running, student = session(worker, cells)
    student.burn_elsewhere(10)
    start = student.cpu_seconds()
    assert student.burn_elsewhere(4_000_000) == 1
    elsewhere = student.cpu_seconds() - start
    running.close()
    assert elsewhere > 0.05, elsewhere


def test_objects_stay_behind_as_handles(worker):
    cells = {
        "a": "import torch\nclass Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.lin = torch.nn.Linear(2, 1)\n    def forward(self, x):\n        return self.lin(x)\n"
        "def gen():\n    yield from range(3)\n"
    }
    running, student = session(worker, cells)
    net = student.Net()
    assert "Net" in repr(net)
    state = net.state_dict()
    assert set(state) == {"lin.weight", "lin.bias"}
    net.load_state_dict({"lin.weight": torch.ones(1, 2), "lin.bias": torch.zeros(1)})
    assert torch.equal(net(torch.ones(3, 2)), torch.full((3, 1), 2.0))
    assert net.get("training") is True
    net.eval()
    assert net.get("training") is False
    assert list(student.gen()) == [0, 1, 2]
    assert [tuple(p.shape) for p in net.parameters()] == [(1, 2), (1,)]
    running.close()


def test_a_hanging_call_costs_only_itself(worker):
    cells = {"a": "def hang(x):\n    while True:\n        pass\ndef ok(x):\n    return x + 1\n"}
    running, student = session(worker, cells, cpu=1)
    restarts = worker.restarts
    assert student.ok(1) == 2
    started = time.monotonic()
    with pytest.raises(SandboxLimit, match="CPU time limit"):
        student.hang(1)
    assert time.monotonic() - started < 10
    assert student.ok(2) == 3, "a new child ran the cells again"
    assert worker.restarts == restarts, "the warm server killed the child; no new sandbox"
    running.close()


def test_a_sleeping_call_meets_the_wall_clock(worker):
    running, student = session(worker, {"a": "import time\ndef nap():\n    time.sleep(60)\n"})
    running.context = CallContext(cpu_seconds=1, wall_seconds=2)
    with pytest.raises(SandboxLimit, match="wall clock"):
        student.nap()
    running.close()


def test_handles_from_a_dead_child_are_stale(worker):
    cells = {"a": "import os\nclass Box:\n    pass\ndef die():\n    os._exit(3)\n"}
    running, student = session(worker, cells)
    box = student.Box()
    with pytest.raises(SandboxLimit, match="ended unexpectedly"):
        student.die()
    with pytest.raises(StaleHandle):
        student.lib("math").floor(box)
    running.close()


def test_exiting_the_process_costs_only_that_cell(worker):
    cells = {"bad": "import os\nos._exit(0)\n", "good": "def ok():\n    return 'fine'\n"}
    running, student = session(worker, cells)
    assert student.ok() == "fine"
    assert "ended unexpectedly" in running.cell_errors["bad"]
    running.close()


def test_sys_exit_and_keyboard_interrupt_are_ordinary_errors(worker):
    cells = {"a": "import sys\ndef f():\n    sys.exit(0)\ndef g():\n    raise KeyboardInterrupt\n"}
    running, student = session(worker, cells)
    with pytest.raises(StudentError, match="^SystemExit"):
        student.f()
    with pytest.raises(StudentError, match="^KeyboardInterrupt.*cell a, line 5"):
        student.g()
    running.close()


def test_a_huge_allocation_fails_cleanly(worker):
    cells = {
        "a": "import torch\ndef big():\n    return torch.empty(50 * 2**30, dtype=torch.uint8).sum()\ndef small():\n    return 1\n"
    }
    running, student = session(worker, cells)
    with pytest.raises((StudentError, SandboxLimit)):
        student.big()
    assert student.small() == 1
    running.close()


def test_printing_is_bounded_and_its_tail_is_kept(worker):
    cells = {
        "a": "def shout():\n    for _ in range(10**6):\n        print('x' * 100)\n    return 'done'\n"
    }
    running, student = session(worker, cells)
    try:
        student.shout()
    except StudentError:
        pass
    running.close()
    assert "x" * 50 in running.output_tail and len(running.output_tail) <= 2000


def test_tmp_and_the_working_directory_are_fresh_for_each_submission(worker):
    write = "import os, tempfile\nopen('/tmp/left', 'w').write('x')\nopen('here', 'w').write('x')\n"
    write += "open(os.path.join(tempfile.gettempdir(), 'mine'), 'w').write('x')\n"
    running, student = session(worker, {"w": write + "def ok():\n    return 1\n"})
    assert student.ok() == 1
    running.close()
    look = "import os\ndef look():\n    return [os.path.exists(p) for p in ('/tmp/left', 'here', 'mine')]\n"
    running, student = session(worker, {"l": look})
    if worker.info.mode == "bubblewrap":
        assert student.look() == [False, False, False]
    else:
        assert student.look()[1:] == [False, False]
    running.close()


def test_a_daemon_does_not_outlive_its_submission(worker):
    spawn = "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
    running, student = session(worker, {"spawn": spawn + "def ok():\n    return 1\n"})
    assert student.ok() == 1
    running.close()
    count = "import os\ndef processes():\n    return len([p for p in os.listdir('/proc') if p.isdigit()])\n"
    running, student = session(worker, {"count": count})
    if worker.info.mode == "bubblewrap":  # a private PID namespace: init, the server and this child
        assert student.processes() <= 3
    running.close()


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
    running, student = session(worker, {"a": probe})
    seen = student.look()
    running.close()
    assert not any(v for k, v in seen.items() if k != "uid"), seen
    assert seen["uid"] != 0


def test_a_fork_bomb_is_bounded(worker):
    if worker.info.mode != "bubblewrap":
        pytest.skip("without a uid of its own the process limit would hit the grader too")
    bomb = "import os\ndef bomb():\n    n = 0\n    for _ in range(10000):\n        try:\n            if os.fork() == 0:\n                import time; time.sleep(30); os._exit(0)\n            n += 1\n        except OSError:\n            break\n    return n\n"
    running, student = session(worker, {"a": bomb}, cpu=10)
    assert student.bomb() < LIMITS.processes + 5
    running.close()
