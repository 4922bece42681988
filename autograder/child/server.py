"""The sandbox side of grading: a fork server that runs one submission at a time.

Started once per worker (inside bubblewrap where available), it imports torch
once and then, for every job the trusted parent sends, forks a fresh child:
an object server (``objects.py``) that runs the submission's cells and answers
the judge's requests one at a time. No state passes between students: each
child starts from the same warmed server, works in its own empty folder, and
every process it leaves behind, and everything it wrote to /tmp, is removed
before the next job starts.

The server never decodes what a child sends: it forwards the child's frames to
the parent as opaque bytes, wrapped in frames of its own, so a child cannot
forge the server's messages. It measures the child's CPU time per request and
kills it past the request's budget; the parent enforces every wall clock.

Run as ``python -I server.py [--drop-uid UID] [--pidns]``.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import resource
import select
import shutil
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy  # noqa: E402,F401  (imported once here so every child starts warm)
import torch  # noqa: E402
import torch.nn.functional  # noqa: E402,F401
from objects import ObjectServer  # noqa: E402
from protocol import (  # noqa: E402
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
    read_frame,
    write_frame,
)

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
OUTPUT_TAIL_BYTES = 2000
SERVER_MEMORY_MB = 2048  # the server's own address-space headroom after warming up


def prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except OSError:
        pass


def set_dumpable(flag: bool) -> None:
    """Non-dumpable processes cannot be ptraced or have /proc/PID/mem read by peers."""
    prctl(PR_SET_DUMPABLE, int(flag))


def drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def count_own_tasks() -> int:
    """Threads of every process visible here (inside a PID namespace: this worker's)."""
    total = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status") as status:
                    for line in status:
                        if line.startswith("Threads:"):
                            total += int(line.split()[1])
            except OSError:
                continue
    return total


def virtual_memory_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def apply_limits(limits: dict, device: str, own_uid_isolated: bool) -> None:
    def cap(kind: int, value: int) -> None:
        try:
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError):
            pass

    cpu = int(limits["cpu_seconds"])
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    except (ValueError, OSError):
        pass
    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_FSIZE, int(limits["file_size_mb"]) * 1024 * 1024)
    cap(resource.RLIMIT_NOFILE, 256)
    if device == "cpu":
        cap(resource.RLIMIT_AS, virtual_memory_bytes() + int(limits["memory_mb"]) * 1024 * 1024)
    else:  # CUDA reserves far more address space than it uses: lift the server's own bound
        cap(resource.RLIMIT_AS, resource.RLIM_INFINITY)
    if own_uid_isolated:
        cap(resource.RLIMIT_NPROC, count_own_tasks() + int(limits["processes"]))


def child_main(job: dict, requests: int, responses: int, workdir: str, isolated: bool) -> None:
    """Runs in the forked child: the only place where student code executes."""
    os.setsid()
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with the server
    set_dumpable(False)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over-long writes fail instead of killing
    os.chdir(workdir)
    os.environ["TMPDIR"] = os.environ["HOME"] = workdir
    sys.path.insert(0, workdir)  # the course helper module sits beside the notebook
    apply_limits(job["limits"], job["device"], isolated)
    torch.set_num_threads(int(job.get("threads", 1)))
    if job["device"] == "cuda":  # compare in IEEE float32: no TF32 in matmuls or convolutions
        if hasattr(torch.backends, "fp32_precision"):
            torch.backends.fp32_precision = "ieee"
        else:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
    server = ObjectServer({"__name__": "__main__"}, job["device"])
    while True:
        try:
            request = decode(read_frame(requests))
        except (EOFError, FrameError):
            return
        response = server.handle(request)
        response["id"] = request.get("id")
        try:
            frame = encode(response)
        except Exception as exc:
            failure = f"the output could not be sent back ({type(exc).__name__})"
            error = {"type": "OutputError", "message": failure, "where": ""}
            frame = encode({"id": request.get("id"), "ok": False, "error": error})
        write_frame(responses, frame)


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU time of ``pid`` and its reaped children, from /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def job_cpu_seconds(pid: int, pidns: bool) -> float:
    """CPU time of the whole job: the child, every process it started (running, or reaped
    by one of its own) and, in a PID namespace, the orphans the namespace's init reaped.
    Work handed to a helper process still counts (the clock hidden tests time with)."""
    me, total = os.getpid(), 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            user, system, children_user, children_system = (
                int(fields[i]) for i in (11, 12, 13, 14)
            )
            session = int(fields[3])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if pidns and int(name) == 1:
            total += children_user + children_system
        elif pidns or int(name) == pid or session == pid:  # the child leads its own session
            total += user + system + children_user + children_system
    return total / os.sysconf("SC_CLK_TCK")


def wipe(folder: str, keep: tuple[str, ...] = ()) -> None:
    """Remove everything in ``folder`` (but ``keep``), whatever permissions a child set."""

    def retry(function, path, _info):
        try:
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700, follow_symlinks=False)
        except OSError:
            pass
        try:
            function(path)
        except OSError:
            pass

    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        if name in keep:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, onerror=retry)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


class Server:
    def __init__(self, proto_out: int, pidns: bool, isolated_uid: bool) -> None:
        self.proto_out = proto_out
        self.pidns = pidns
        self.isolated_uid = isolated_uid
        self.tmp_root = os.environ.get("TMPDIR", "/tmp")
        self.work_root = os.path.join(self.tmp_root, "grader-work")
        self.fresh_tmp()

    def fresh_tmp(self) -> None:
        """/tmp (and /dev/shm) as empty as at the first job: nothing passes to the next student."""
        wipe(self.tmp_root)
        if self.pidns:
            wipe("/dev/shm")
        os.makedirs(self.work_root, mode=0o700, exist_ok=True)

    def send(self, message: dict) -> None:
        write_frame(self.proto_out, MESSAGE + encode(message))

    def serve(self) -> None:
        self.send({"type": "ready", "pid": os.getpid(), "uid": os.getuid()})
        while True:
            job = self.control()
            if job.get("type") == "stop":
                return
            if job.get("type") != "job":
                continue  # a late message for a job that has ended
            try:
                self.run_job(job)
            except Exception as exc:  # report and stay up for the next job
                status = f"server error {type(exc).__name__}: {exc}"[:300]
                self.send(
                    {"type": "exit", "job": job.get("id"), "status": status, "output_tail": ""}
                )
            # After the exit message, so that the judge need not wait for it (a quarter of
            # a second): the next job is read only once /tmp is empty again.
            self.fresh_tmp()

    def control(self) -> dict:
        try:
            frame = read_frame(0, MAX_FRAME_BYTES + (1 << 20))
            if frame[:1] == REQUEST:
                job, seconds, payload = open_envelope(frame)
                return {"type": "request", "job": job, "cpu_seconds": seconds, "raw": payload}
            message = decode(frame[1:])
        except (EOFError, FrameError):  # the parent is gone: end everything
            self.sweep(0)
            os._exit(0)
        return message if isinstance(message, dict) else {}

    def run_job(self, job: dict) -> None:
        workdir = os.path.join(self.work_root, f"job-{job['id']}")
        os.makedirs(workdir)
        # Course helper modules and packages (text), and a submitted weights file (bytes).
        for name, content in job.get("files", {}).items():
            parts = [part for part in str(name).split("/") if part not in ("", ".", "..")]
            if not parts:
                continue
            path = os.path.join(workdir, *parts)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb" if isinstance(content, bytes) else "w") as handle:
                handle.write(content)
        # The child's output goes to an unlinked file the server holds open: its tail is
        # read through this descriptor, never through a path a child could replace.
        path = os.path.join(self.work_root, f"output-{job['id']}.txt")
        output = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.unlink(path)
        request_read, request_write = os.pipe()
        response_read, response_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                for fd in (request_write, response_read, self.proto_out):
                    os.close(fd)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(output, 1)
                os.dup2(output, 2)
                os.close(output)
                child_main(job, request_read, response_write, workdir, self.isolated_uid)
            except BaseException:
                code = 70
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except BaseException:
                        pass
                os._exit(code)
        os.close(request_read)
        os.close(response_write)
        fcntl.fcntl(request_write, fcntl.F_SETFL, os.O_NONBLOCK)
        try:
            status = self.relay(job["id"], pid, request_write, response_read)
        finally:
            for fd in (request_write, response_read):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.sweep(pid)
        tail = read_tail(output)
        os.close(output)
        self.send({"type": "exit", "job": job["id"], "status": status, "output_tail": tail})

    def relay(self, job_id: int, pid: int, request_fd: int, response_fd: int) -> str:
        """Pass requests to the child and its frames back until it exits; say how it ended.

        The parent may also ask (on stdin) to kill the child or to end the job. The
        CPU time of each request is measured here and bounded by its budget.
        """
        buffer = bytearray()
        pending = bytearray()
        watch = [response_fd, 0]
        budget: float | None = None
        cpu_start = 0.0
        verdict = None
        while True:
            writers = [request_fd] if pending and request_fd >= 0 else []
            ready, writable, _ = select.select(watch, writers, [], 0.05)
            if 0 in ready:
                message = self.control()
                kind = message.get("type")
                if message.get("job") != job_id:
                    pass  # a late message for an earlier job
                elif kind == "kill":
                    kill_tree(pid)
                elif kind == "end" and request_fd >= 0:
                    os.close(request_fd)
                    request_fd, pending = -1, bytearray()
                elif kind == "request" and request_fd >= 0:
                    frame = message["raw"]
                    pending += HEADER.pack(len(frame)) + frame
                    budget = float(message.get("cpu_seconds") or 0) or None
                    cpu_start = cpu_seconds_of(pid)
            if writable:
                try:
                    written = os.write(request_fd, pending[: 1 << 16])
                    del pending[:written]
                except BlockingIOError:
                    pass
                except OSError:  # the child closed its end: it is ending
                    pending.clear()
            if response_fd in ready:
                chunk = os.read(response_fd, 1 << 20)
                if chunk:
                    buffer += chunk
                    if not self.forward(job_id, buffer, job_cpu_seconds(pid, self.pidns)):
                        kill_tree(pid)
                else:
                    watch = [0]  # every writer closed the pipe: the child is ending
            if budget is not None and cpu_seconds_of(pid) - cpu_start > budget:
                verdict = f"CPU time limit ({budget:g} s) exceeded"
                kill_tree(pid)
                budget = None
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                deadline = time.monotonic() + 0.2  # drain what it (or what it left) wrote last
                while (
                    response_fd in watch
                    and time.monotonic() < deadline
                    and select.select([response_fd], [], [], 0.05)[0]
                ):
                    chunk = os.read(response_fd, 1 << 20)
                    if not chunk:
                        break
                    buffer += chunk
                    self.forward(job_id, buffer)
                return verdict or describe_status(raw)

    def forward(self, job_id: int, buffer: bytearray, cpu: float = 0.0) -> bool:
        """Pass the child's complete frames on, each with the child's CPU time so far: a
        clock measured here, out of the child's reach (hidden tests time models with it)."""
        while len(buffer) >= HEADER.size:
            (size,) = HEADER.unpack(buffer[: HEADER.size])
            if size > MAX_FRAME_BYTES:
                buffer.clear()
                self.send({"type": "child_error", "job": job_id, "error": "a frame was too large"})
                return False
            if len(buffer) < HEADER.size + size:
                return True
            payload = bytes(buffer[HEADER.size : HEADER.size + size])
            del buffer[: HEADER.size + size]
            write_frame(self.proto_out, envelope(CHILD, job_id, payload, cpu))
        return True

    def sweep(self, pid: int) -> None:
        """Kill whatever the child left running (daemons, forks) before the next job."""
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        if not self.pidns:
            return
        me = os.getpid()
        for _ in range(100):
            others = [int(n) for n in os.listdir("/proc") if n.isdigit() and int(n) not in (1, me)]
            if not others:
                return
            for other in others:
                try:
                    os.kill(other, signal.SIGKILL)
                except OSError:
                    pass
            for other in others:
                try:
                    os.waitpid(other, os.WNOHANG)
                except ChildProcessError:
                    pass
            time.sleep(0.01)


def kill_tree(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass


def describe_status(raw: int) -> str:
    if os.WIFSIGNALED(raw):
        number = os.WTERMSIG(raw)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return f"killed by {name}"
    return f"exit code {os.WEXITSTATUS(raw)}"


def read_tail(fd: int) -> str:
    """The last bytes the child printed, read through the server's own descriptor."""
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - OUTPUT_TAIL_BYTES)
        return os.pread(fd, min(size, OUTPUT_TAIL_BYTES), start).decode("utf-8", "replace")
    except OSError:
        return ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drop-uid", type=int)
    parser.add_argument("--pidns", action="store_true")
    parser.add_argument("--preload", default="matplotlib,matplotlib.pyplot,torchvision,PIL.Image")
    args = parser.parse_args()
    if args.drop_uid is not None and os.getuid() == 0:
        drop_privileges(args.drop_uid)
    set_dumpable(False)
    proto_out = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    torch.set_num_threads(1)
    torch.nn.functional.conv2d(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 2, 2))  # warm kernels
    for module in args.preload.split(","):  # what notebooks import, so each child starts warm
        if module:
            try:
                __import__(module)
            except Exception:
                pass
    try:  # the server's own bound; each child sets a lower one of its own
        limit = virtual_memory_bytes() + SERVER_MEMORY_MB * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass
    isolated = args.drop_uid is not None and args.pidns
    Server(proto_out, args.pidns, isolated).serve()


if __name__ == "__main__":
    main()
