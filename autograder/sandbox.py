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
crashing child stop the batch: it kills the child (or the worker), starts a
new one and goes on with the next request.
"""

from __future__ import annotations

import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from autograder.child.protocol import (
    CHILD,
    HEADER,
    MAX_FRAME_BYTES,
    MESSAGE,
    REQUEST,
    FrameError,
    decode,
    encode,
    envelope,
    open_envelope,
    write_frame,
)
from autograder.remote import (
    CallContext,
    SandboxLimit,
    StudentError,
    clean_text,
    error_text,
    handle_response,
)
from autograder.rubric import Limits

CHILD_DIR = Path(__file__).resolve().parent / "child"
SANDBOX_CHILD_DIR = "/opt/grader"
SERVER_FRAME_MARGIN = 1 << 20  # the server's wrapping around a child's largest frame
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


# Who an rlimits-mode worker runs as when the grader runs as root (Gradescope's container).
SANDBOX_USER_ENV = "AUTOGRADER_SANDBOX_USER"


def sandbox_user() -> tuple[int, int] | None:
    """``(uid, gid)`` an rlimits-mode worker drops to, or None to run as this process.

    Set when this process runs as root and ``$AUTOGRADER_SANDBOX_USER`` names a user
    (a name, or a numeric uid that is then also the gid). bubblewrap workers drop to a
    uid of their own anyway. An unknown user or root itself is an error, never root.
    """
    name = os.environ.get(SANDBOX_USER_ENV, "").strip()
    if not name or os.geteuid() != 0:
        return None
    if name.isdigit():
        uid = gid = int(name)
    else:
        import pwd

        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise SandboxError(f"{SANDBOX_USER_ENV}={name}: no such user") from None
        uid, gid = entry.pw_uid, entry.pw_gid
    if uid == 0 or gid == 0:
        raise SandboxError(f"{SANDBOX_USER_ENV}={name} is root: student code never runs as root")
    if shutil.which("setpriv") is None:
        raise SandboxError(f"{SANDBOX_USER_ENV} is set but setpriv (util-linux) is missing")
    return uid, gid


def drop_to_user_command(user: tuple[int, int]) -> list[str]:
    """The prefix that runs a command as ``user``: no groups, no capabilities, no setuid."""
    uid, gid = user
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--no-new-privs",
        "--",
    ]


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


def resolve_device(device: str) -> str:
    """``auto``, ``cpu`` or ``cuda`` to the device a run uses (ValueError if unavailable)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device '{device}' (use auto, cpu or cuda)")
    return device


def resolve_sandbox(mode: str) -> SandboxInfo:
    """The sandbox a run uses; ``auto`` falls back to the weaker mode with a warning."""
    if mode == "rlimits":
        return SandboxInfo("rlimits", "requested with --sandbox rlimits")
    info = check_bubblewrap()
    if mode == "bubblewrap" and info.mode != "bubblewrap":
        raise RuntimeError(f"bubblewrap was required but does not work here: {info.reason}")
    if info.mode != "bubblewrap":
        print(f"WARNING: {info.description}", file=sys.stderr)
    return info


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
                if size > MAX_FRAME_BYTES + SERVER_FRAME_MARGIN:
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
        server = [sys.executable, "-I", str(CHILD_DIR / "server.py")]
        user = sandbox_user()  # root drops to $AUTOGRADER_SANDBOX_USER
        return server if user is None else drop_to_user_command(user) + server

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the server process without waiting for it to finish warming up."""
        env = None
        if self.info.mode != "bubblewrap":
            user = sandbox_user()  # the server's HOME and TMPDIR are its own
            self.tmpdir = tempfile.mkdtemp(prefix=f"grader-worker{self.index}-")
            if user is not None:
                os.chown(self.tmpdir, *user)
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

    def wait_ready(self) -> None:
        try:
            ready = self.receive(self.limits.startup_seconds)
        except (EOFError, FrameError):
            ready = None
        if not ready or ready.get("type") != "ready":
            self.kill()
            raise SandboxError(f"the sandbox worker did not start ({self.info.description})")

    def receive(self, timeout: float) -> dict | None:
        """The server's next message; a child's frame comes as ``{"type": "child", "raw": bytes}``."""
        frame = self.reader.next(timeout)
        if frame is None:
            return None
        if frame[:1] == CHILD:
            job, cpu, payload = open_envelope(frame)
            return {"type": "child", "job": job, "raw": payload, "cpu": cpu}
        message = decode(frame[1:])
        return message if isinstance(message, dict) else {}

    def send(self, message: dict) -> None:
        write_frame(self.process.stdin.fileno(), MESSAGE + encode(message))

    def send_request(self, job: int, cpu_seconds: float, frame: bytes) -> None:
        """Bytes for the job's child, passed on by the server unread."""
        write_frame(self.process.stdin.fileno(), envelope(REQUEST, job, frame, cpu_seconds))

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


# --------------------------------------------------------------------------- sessions

MAX_SUBMISSION_BYTES = 512 * 1024 * 1024  # all a submission may send back, in total


def wall_seconds(cpu_seconds: float) -> float:
    """The wall clock a call gets: a wide margin over its CPU budget (a loaded machine
    slows a call down; a sleeping one uses no CPU)."""
    return 3 * cpu_seconds + 10


def ended_message(status: str, limits: Limits) -> str:
    if "CPU time limit" in status:
        return status
    if "SIGXCPU" in status:
        return f"total CPU time limit ({limits.cpu_seconds} s) exceeded"
    if "SIGKILL" in status:
        return f"the process was killed ({status}); likely the memory limit ({limits.memory_mb} MB)"
    return f"the process ended unexpectedly ({status})"


class SandboxSession:
    """One submission running in a sandboxed child: its cells, then the judge's requests.

    Every wall clock is kept here, fixed when a request is sent. When the child
    dies (a limit, a crash, ``os._exit``), the next request starts a new one and
    runs the cells again, skipping any that killed it; handles from the old child
    are then stale.
    """

    def __init__(self, worker: Worker, cells: list[dict], files: dict[str, str]) -> None:
        self.worker = worker
        self.cells = cells
        self.files = files
        self.limits = worker.limits
        self.device = worker.device
        self.generation = 0
        self.job_id: int | None = None
        self.cell_errors: dict[str, str] = {}
        self.skip_cells: set[str] = set()
        self.output_tail = ""
        self.context = None
        self.started = time.monotonic()
        self.deadline = self.started + self.limits.submission_seconds
        self.received = 0

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    # ---------------------------------------------------------------- public

    def request(self, wire: dict, context: CallContext) -> Any:
        if self.job_id is None:
            self.start()
        return self.exchange(wire, context, context.cpu_seconds, context.wall_seconds)

    def start(self) -> None:
        """A fresh child with the submission's cells run in order."""
        for _ in range(len(self.cells) + 2):
            self.spawn()
            for cell in self.cells:
                if cell["id"] in self.skip_cells:
                    continue
                wire = {"op": "exec", "cell": cell["id"], "source": cell["source"], "seed": 0}
                cpu = self.limits.cell_cpu_seconds
                try:
                    self.exchange(wire, CallContext(), cpu, wall_seconds(cpu))
                except StudentError as exc:
                    self.cell_errors.setdefault(cell["id"], str(exc))
                except SandboxLimit as exc:
                    if time.monotonic() >= self.deadline:
                        raise
                    self.cell_errors.setdefault(cell["id"], str(exc))
                    self.skip_cells.add(cell["id"])
                    break
            else:
                return
        raise SandboxLimit("the submission could not be started")

    def close(self) -> None:
        """End the child and collect what it printed last."""
        if self.job_id is None:
            return
        job, self.job_id = self.job_id, None
        try:
            self.worker.send({"type": "end", "job": job})
            deadline = time.monotonic() + 5
            while (remaining := deadline - time.monotonic()) > 0:
                message = self.worker.receive(remaining)
                if message is None:
                    break
                if message.get("type") == "exit" and message.get("job") == job:
                    self.output_tail = _text(message.get("output_tail"))
                    return
        except (EOFError, FrameError, OSError, ValueError):
            pass
        self.worker.kill()

    # ---------------------------------------------------------------- internals

    def spawn(self) -> None:
        if not self.worker.alive():
            self.worker.restart()
        self.job_id = secrets.randbits(62)
        self.generation += 1
        self.worker.send(
            {
                "type": "job",
                "id": self.job_id,
                "limits": asdict(self.limits),
                "device": self.device,
                "files": dict(self.files),
                "threads": 1,
            }
        )

    def lost(self, reason: str) -> SandboxLimit:
        self.job_id = None
        return SandboxLimit(reason)

    def exchange(self, wire: dict, context: CallContext, cpu: float, wall: float) -> Any:
        if time.monotonic() >= self.deadline:
            raise self.lost(
                f"submission time limit ({self.limits.submission_seconds:.0f} s) reached; "
                "the remaining checks were not run"
            )
        if self.job_id is None:
            raise self.lost("the submission is not running")
        request_id = secrets.randbits(62)
        job = self.job_id
        try:
            self.worker.send_request(job, cpu, encode({**wire, "id": request_id}))
            deadline = min(time.monotonic() + wall, self.deadline)
            while True:
                message = self.worker.receive(max(0.0, deadline - time.monotonic()))
                if message is None:
                    ended = self.worker.interrupt(job)
                    if ended is None:
                        self.worker.kill()
                    else:
                        self.output_tail = _text(ended.get("output_tail"))
                    if time.monotonic() >= self.deadline:
                        raise self.lost(
                            f"submission time limit ({self.limits.submission_seconds:.0f} s) reached"
                        )
                    raise self.lost(f"time limit ({wall:g} s wall clock) exceeded")
                if message.get("job") != job:
                    continue  # a late message about an earlier child
                kind = message.get("type")
                if kind == "exit":
                    self.output_tail = _text(message.get("output_tail"))
                    raise self.lost(ended_message(_text(message.get("status")), self.limits))
                if kind == "child_error":
                    self.worker.interrupt(job)
                    raise self.lost("the output was too large to send back")
                if kind != "child":
                    continue
                payload = message["raw"]
                self.received += len(payload)
                if self.received > MAX_SUBMISSION_BYTES:
                    self.worker.interrupt(job)
                    raise self.lost(
                        f"the submission sent back more than {MAX_SUBMISSION_BYTES >> 20} MB"
                    )
                try:
                    inner = decode(payload)
                except FrameError:
                    self.worker.interrupt(job)
                    raise self.lost("the submission sent back something unreadable") from None
                if type(inner) is dict and inner.get("id") == request_id:
                    context.child_cpu = message["cpu"]
                    return handle_response(inner, self, context)
        except (EOFError, FrameError, OSError, ValueError) as exc:
            self.worker.kill()
            raise self.lost(f"the sandbox stopped unexpectedly ({type(exc).__name__})") from None


def _text(value: Any) -> str:
    return clean_text(value, 4000) if type(value) is str else ""


class LocalSession:
    """The solution notebook run in this process: how an instructor tests a hidden suite.

    Requests take the same encode/decode path as in the sandbox, so a test that
    passes here sees the same values when it grades a submission.
    """

    def __init__(self, cells: list[dict], device: str) -> None:
        self.device = device
        self.generation = 1
        self.context = None
        self.cell_errors: dict[str, str] = {}
        self.output_tail = ""
        from autograder.child.objects import ObjectServer  # torch: only this session needs it

        self.server = ObjectServer({"__name__": "__main__"}, device)
        for cell in cells:
            wire = {"op": "exec", "cell": cell["id"], "source": cell["source"]}
            response = self.server.handle(wire)
            if not response["ok"]:
                self.cell_errors[cell["id"]] = error_text(response["error"])

    def request(self, wire: dict, context: CallContext) -> Any:
        response = self.server.handle(decode(encode(wire)))
        context.child_cpu = time.process_time()
        return handle_response(decode(encode(response)), self, context)

    def close(self) -> None:
        pass
