"""The trusted side of the sandbox: start workers, send jobs, enforce wall clocks.

A worker is one fork server (``autograder/child/server.py``) running inside
bubblewrap: no network, a private PID namespace, a read-only view of the
Python installation and the server code only (not ``autograder/``,
``solutions/``, ``source/``, the gradebook or any other submission), a
size-limited ``/tmp``, and a uid of its own. The course helper module and the
student's cells arrive with each job through a pipe. If bubblewrap is
missing or cannot start, the same server runs as a plain child process with
rlimits only, and :attr:`SandboxInfo.mode` says so for the reports.

Everything a worker sends is untrusted. This module never lets a hung or
crashing child stop the batch: it kills the worker, starts a new one and
resumes the submission after the cell or probe that failed.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder.child.protocol import (
    HEADER,
    MAX_FRAME_BYTES,
    FrameError,
    decode,
    encode,
    write_frame,
)
from autograder.rubric import Limits

CHILD_DIR = Path(__file__).resolve().parent / "child"
SANDBOX_CHILD_DIR = "/opt/grader"
BASE_UID = 61000  # workers run as BASE_UID + a slot unique to this process and worker


def sandbox_uid(index: int) -> int:
    """A uid no other live worker uses, so each worker's process limit is its own."""
    return BASE_UID + (os.getpid() % 1024) * 64 + index % 64


ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    "passwd",
    "group",
    "nsswitch.conf",
    "fonts",
)


class SandboxError(RuntimeError):
    """A worker could not be started at all."""


@dataclass(frozen=True)
class SandboxInfo:
    """How student code is isolated in this run; printed in every report."""

    mode: str  # "bubblewrap" or "rlimits"
    reason: str = ""

    @property
    def description(self) -> str:
        if self.mode == "bubblewrap":
            return "bubblewrap sandbox (no network, private filesystem view, rlimits)"
        return (
            "WEAKER MODE: rlimits only, no bubblewrap"
            + (f" ({self.reason})" if self.reason else "")
            + ". Student code could read files and use the network."
        )


# --------------------------------------------------------------------------- commands


def _ro_bind(source: Path | str, dest: Path | str, made: set[str]) -> list[str]:
    """Bind ``source`` read-only at ``dest``, creating readable parent folders first.

    bubblewrap creates missing parents with the caller's umask (often 0700), which
    the unprivileged uid the server drops to could not traverse.
    """
    args = []
    for parent in reversed(Path(dest).parents[:-1]):
        if str(parent) not in made:
            made.add(str(parent))
            args += ["--perms", "0755", "--dir", str(parent)]
    return args + ["--ro-bind", str(source), str(dest)]


def _bwrap_binds(device: str) -> list[str]:
    made: set[str] = {"/tmp", "/proc", "/dev"}  # mounted before the binds
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("lib", "lib64", "bin", "sbin"):
        target = Path("/") / name
        if target.is_symlink():
            args += ["--symlink", os.readlink(target), str(target)]
        elif target.exists():
            args += ["--ro-bind", str(target), str(target)]
    for name in ETC_FILES:
        path = Path("/etc") / name
        if path.exists():
            args += _ro_bind(path, path, made)
    prefixes = sorted(
        {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.prefix)}
    )
    for prefix in prefixes:
        if not str(prefix).startswith("/usr/"):
            args += _ro_bind(prefix, prefix, made)
    args += _ro_bind(CHILD_DIR, SANDBOX_CHILD_DIR, made)
    if device == "cuda":
        for dev in sorted(Path("/dev").glob("nvidia*")):
            args += ["--dev-bind", str(dev), str(dev)]
    return args


def bwrap_command(index: int, device: str, limits: Limits) -> list[str]:
    privileged = os.geteuid() == 0
    args = ["bwrap", "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid"]
    args += ["--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    args += [] if privileged else ["--unshare-user"]
    # The private /tmp comes first: a checkout or venv under /tmp is then bound inside it
    # instead of being hidden by it.
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--size", str(limits.tmp_mb * 1024 * 1024), "--perms", "1777", "--tmpfs", "/tmp"]
    args += _bwrap_binds(device)
    args += ["--clearenv", "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp"]
    args += ["--setenv", "PATH", "/usr/bin:/bin", "--setenv", "MPLBACKEND", "Agg"]
    args += ["--setenv", "MPLCONFIGDIR", "/tmp/.mpl", "--setenv", "CNNKIT_GRADING", "1"]
    args += ["--chdir", "/tmp"]
    server = [sys.executable, "-I", f"{SANDBOX_CHILD_DIR}/server.py", "--pidns"]
    if privileged:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        server += ["--drop-uid", str(sandbox_uid(index))]
    return args + ["--", *server]


def check_bubblewrap() -> SandboxInfo:
    """Start a trivial sandbox once to see whether bubblewrap works here."""
    if shutil.which("bwrap") is None:
        return SandboxInfo("rlimits", "bwrap is not installed")
    command = bwrap_command(0, "cpu", Limits())
    command = command[: command.index("--") + 1] + [sys.executable, "-I", "-c", "import os"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return SandboxInfo("rlimits", f"bwrap failed to start: {exc}")
    if done.returncode != 0:
        return SandboxInfo("rlimits", f"bwrap failed to start: {done.stderr.strip()[:200]}")
    return SandboxInfo("bubblewrap")


# --------------------------------------------------------------------------- worker


class FrameReader:
    """Reads the server's frames with a deadline; never blocks past it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def next(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            if len(self.buffer) >= HEADER.size:
                (size,) = HEADER.unpack(self.buffer[: HEADER.size])
                if size > MAX_FRAME_BYTES:
                    raise FrameError("oversized frame from the sandbox")
                if len(self.buffer) >= HEADER.size + size:
                    payload = bytes(self.buffer[HEADER.size : HEADER.size + size])
                    del self.buffer[: HEADER.size + size]
                    return payload
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                chunk = os.read(self.fd, 1 << 20)
                if not chunk:
                    raise EOFError
                self.buffer += chunk


@dataclass
class Worker:
    """One sandboxed fork server; restarted whenever a job has to be cut short."""

    index: int
    device: str
    limits: Limits
    info: SandboxInfo
    process: subprocess.Popen | None = None
    reader: FrameReader | None = None
    restarts: int = 0
    tmpdir: str | None = None

    def command(self) -> list[str]:
        if self.info.mode == "bubblewrap":
            return bwrap_command(self.index, self.device, self.limits)
        return [sys.executable, "-I", str(CHILD_DIR / "server.py")]

    def start(self) -> None:
        env = None
        if self.info.mode != "bubblewrap":
            self.tmpdir = tempfile.mkdtemp(prefix=f"grader-worker{self.index}-")
            env = {
                "PATH": "/usr/bin:/bin",
                "HOME": self.tmpdir,
                "TMPDIR": self.tmpdir,
                "MPLBACKEND": "Agg",
                "CNNKIT_GRADING": "1",
            }
        log = os.environ.get("AUTOGRADER_SANDBOX_LOG")  # debugging: the servers' stderr
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(log, "ab") if log else subprocess.DEVNULL,  # noqa: SIM115
            start_new_session=True,
            env=env,
        )
        self.reader = FrameReader(self.process.stdout.fileno())
        try:
            ready = self.receive(self.limits.startup_seconds)
        except (EOFError, FrameError):
            ready = None
        if not ready or ready.get("type") != "ready":
            self.kill()
            raise SandboxError(f"the sandbox worker did not start ({self.info.description})")

    def receive(self, timeout: float) -> dict | None:
        payload = self.reader.next(timeout)
        return None if payload is None else decode(payload)

    def send(self, message: dict) -> None:
        write_frame(self.process.stdin.fileno(), encode(message))

    def interrupt(self, job_id: int, timeout: float = 3.0) -> dict | None:
        """Ask the server to kill a job's child; its exit message once the server confirms.

        The server stays warm, so a hung check costs a new fork, not a new sandbox.
        """
        try:
            self.send({"type": "kill", "job": job_id})
            deadline = time.monotonic() + timeout
            while (remaining := deadline - time.monotonic()) > 0:
                message = self.receive(remaining)
                if message is None:
                    return None
                if message.get("type") == "exit" and message.get("job") == job_id:
                    return message
        except (EOFError, FrameError, OSError, ValueError):
            pass
        return None

    def kill(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                pass
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            self.process = None
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def restart(self) -> None:
        self.kill()
        self.restarts += 1
        self.start()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


# --------------------------------------------------------------------------- jobs


@dataclass
class Execution:
    """What came back from running one submission: raw, untrusted, not yet judged."""

    cell_errors: dict[str, str] = field(default_factory=dict)
    results: dict[int, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    output_tail: str = ""
    seconds: float = 0.0


def _ended_message(status: str, limits: Limits) -> str:
    if "SIGXCPU" in status:
        return f"CPU time limit ({limits.cpu_seconds} s) exceeded"
    if "SIGKILL" in status:
        return f"the process was killed ({status}); likely a resource limit (CPU {limits.cpu_seconds} s, memory {limits.memory_mb} MB)"
    return f"the process ended unexpectedly ({status})"


def execute(
    worker: Worker, cells: list[dict], probes: list[dict], files: tuple[str, ...], job_id: int
) -> Execution:
    """Run cells then probes for one submission, resuming after every failure."""
    limits = worker.limits
    outcome = Execution()
    started = time.monotonic()
    budget_end = started + limits.submission_seconds
    start, skip = 0, set()
    for attempt in range(len(cells) + len(probes) + 2):
        if not worker.alive():
            worker.restart()
        job = {
            "type": "job",
            "id": job_id * 1000 + attempt,
            "cells": cells,
            "skip_cells": sorted(skip),
            "probes": probes,
            "start": start,
            "limits": asdict(limits),
            "device": worker.device,
            "files": dict(files),
        }
        current, failure, done = _run_job(worker, job, outcome, budget_end)
        if done:
            break
        if current is None and attempt == 0:
            worker.kill()
            continue
        if current is None:
            outcome.notes.append(f"the submission could not be started: {failure}")
            break
        kind, key = current
        if kind == "cell":
            outcome.cell_errors[key] = failure
            skip.add(key)
        else:
            outcome.results[key] = {"ok": False, "error": failure}
            start = key + 1
            # The check has failed: skip its remaining cases rather than time out on each.
            group = probes[key].get("check")
            while group is not None and start < len(probes) and probes[start].get("check") == group:
                outcome.results[start] = {
                    "ok": False,
                    "error": "not run after an earlier case of this check failed",
                }
                start += 1
        if time.monotonic() >= budget_end:
            outcome.notes.append(
                f"submission time limit ({limits.submission_seconds:.0f} s) reached; the remaining checks were not run"
            )
            break
        if kind == "probe" and start >= len(probes):
            break
    outcome.seconds = time.monotonic() - started
    return outcome


def _run_job(worker: Worker, job: dict, outcome: Execution, budget_end: float):
    """Drive one job. Returns (what was running, why it stopped, finished cleanly)."""
    limits = worker.limits
    current = None
    deadline = time.monotonic() + limits.cell_seconds
    limit_text = f"time limit ({limits.cell_seconds:.0f} s) exceeded"
    finished = False
    try:
        worker.send(job)
        while True:
            now = time.monotonic()
            wait = min(deadline, budget_end) - now
            message = worker.receive(wait) if wait > 0 else None
            if message is None:
                if finished:
                    worker.kill()
                    return current, "", True
                if budget_end <= time.monotonic():
                    limit_text = (
                        f"submission time limit ({limits.submission_seconds:.0f} s) exceeded"
                    )
                ended = worker.interrupt(job["id"])
                if ended is None:
                    worker.kill()
                else:
                    outcome.output_tail = str(ended.get("output_tail", ""))[-2000:]
                return current, limit_text, False
            kind = message.get("type")
            if kind == "exit" and message.get("job") == job["id"]:
                outcome.output_tail = str(message.get("output_tail", ""))[-2000:]
                if finished:
                    return current, "", True
                return current, _ended_message(str(message.get("status")), limits), False
            if kind != "child" or message.get("job") != job["id"]:
                continue
            try:
                inner = decode(bytes(message["frame"].numpy().tobytes()))
            except (FrameError, AttributeError, KeyError, TypeError):
                continue
            if not isinstance(inner, dict):
                continue
            event = inner.get("type")
            if event == "cell_start" and isinstance(inner.get("cell"), str):
                current = ("cell", inner["cell"])
                deadline = time.monotonic() + limits.cell_seconds
                limit_text = (
                    f"time limit ({limits.cell_seconds:.0f} s) exceeded while running the cell"
                )
            elif event == "cell_done" and current == ("cell", inner.get("cell")):
                if inner.get("error"):
                    outcome.cell_errors[current[1]] = str(inner["error"])[:500]
            elif event == "probe_start" and isinstance(inner.get("index"), int):
                index = inner["index"]
                if not 0 <= index < len(job["probes"]):
                    continue
                current = ("probe", index)
                seconds = job["probes"][index].get("wall_seconds") or limits.check_seconds
                deadline = time.monotonic() + seconds
                limit_text = f"time limit ({seconds:.0f} s) exceeded"
            elif event == "probe_result" and current == ("probe", inner.get("index")):
                payload = inner.get("payload")
                outcome.results[current[1]] = (
                    payload
                    if isinstance(payload, dict)
                    else {"ok": False, "error": "malformed result"}
                )
            elif event == "done":
                finished = True
                deadline = time.monotonic() + 10
    except (EOFError, FrameError, OSError, ValueError) as exc:
        worker.kill()
        return current, f"the sandbox stopped unexpectedly ({type(exc).__name__})", False
