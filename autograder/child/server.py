"""The sandbox side of grading: a fork server that runs one submission at a time.

Started once per worker (inside bubblewrap where available), it imports torch
once and then, for every job the trusted parent sends, forks a fresh child that
executes the student's cells and the probes. No state passes between students:
each child starts from the same warmed server, works in its own empty folder,
and every process it leaves behind is killed before the next job starts.

The server never decodes what a child sends: it forwards the child's frames to
the parent as opaque bytes, wrapped in frames of its own, so a child cannot
forge the server's messages. The parent treats everything from here as
untrusted and enforces all wall-clock limits itself.

Run as ``python -I server.py [--drop-uid UID] [--pidns]``.
"""

from __future__ import annotations

import argparse
import ctypes
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
import probes  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional  # noqa: E402,F401
from protocol import (  # noqa: E402
    HEADER,
    MAX_FRAME_BYTES,
    FrameError,
    decode,
    encode,
    read_frame,
    write_frame,
)

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
OUTPUT_NAME = "output.txt"
OUTPUT_TAIL_BYTES = 2000


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
    if device == "cpu":  # CUDA reserves far more address space than it uses
        cap(resource.RLIMIT_AS, virtual_memory_bytes() + int(limits["memory_mb"]) * 1024 * 1024)
    if own_uid_isolated:
        cap(resource.RLIMIT_NPROC, count_own_tasks() + int(limits["processes"]))


def child_main(job: dict, out_fd: int, workdir: str, own_uid_isolated: bool) -> None:
    """Runs in the forked child: the only place where student code executes."""
    os.setsid()
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with the server
    set_dumpable(False)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over-long writes fail instead of killing
    output = os.open(os.path.join(workdir, OUTPUT_NAME), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    os.chdir(workdir)
    sys.path.insert(0, workdir)  # the course helper module sits beside the notebook
    apply_limits(job["limits"], job["device"], own_uid_isolated)
    torch.set_num_threads(int(job.get("threads", 1)))
    if job["device"] == "cuda":  # compare in IEEE float32: no TF32 in matmuls or convolutions
        if hasattr(torch.backends, "fp32_precision"):
            torch.backends.fp32_precision = "ieee"
        else:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False

    def send(message: dict) -> None:
        write_frame(out_fd, encode(message))

    namespace: dict = {"__name__": "__main__"}
    for cell in job["cells"]:
        if cell["id"] in job["skip_cells"]:
            continue
        send({"type": "cell_start", "cell": cell["id"]})
        error = None
        try:
            exec(compile(cell["source"], f"<cell {cell['id']}>", "exec"), namespace)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt included
            error = probes.describe_error(exc)
        send({"type": "cell_done", "cell": cell["id"], "error": error})
    for index in range(job["start"], len(job["probes"])):
        send({"type": "probe_start", "index": index})
        payload = probes.run_probe(namespace, job["probes"][index], job["device"])
        try:
            frame = encode({"type": "probe_result", "index": index, "payload": payload})
        except Exception as exc:
            message = f"the output could not be sent back ({type(exc).__name__})"
            frame = encode(
                {"type": "probe_result", "index": index, "payload": {"ok": False, "error": message}}
            )
        write_frame(out_fd, frame)
    send({"type": "done"})


class Server:
    def __init__(self, proto_out: int, pidns: bool, isolated_uid: bool) -> None:
        self.proto_out = proto_out
        self.pidns = pidns
        self.isolated_uid = isolated_uid
        self.work_root = os.path.join(os.environ.get("TMPDIR", "/tmp"), "grader-work")
        os.makedirs(self.work_root, exist_ok=True)

    def send(self, message: dict) -> None:
        write_frame(self.proto_out, encode(message))

    def serve(self) -> None:
        self.send(
            {
                "type": "ready",
                "pid": os.getpid(),
                "uid": os.getuid(),
                "torch": str(torch.__version__),
            }
        )
        while True:
            try:
                job = decode(read_frame(0))
            except (EOFError, FrameError):
                return
            if job.get("type") == "stop":
                return
            try:
                self.run_job(job)
            except Exception as exc:  # report and stay up for the next job
                self.send(
                    {
                        "type": "exit",
                        "job": job.get("id"),
                        "status": f"server error {type(exc).__name__}: {exc}"[:300],
                        "output_tail": "",
                    }
                )

    def run_job(self, job: dict) -> None:
        workdir = os.path.join(self.work_root, f"job-{job['id']}")
        shutil.rmtree(workdir, ignore_errors=True)
        os.makedirs(workdir)
        for name, text in job.get(
            "files", {}
        ).items():  # course helper modules the notebook imports
            with open(os.path.join(workdir, os.path.basename(name)), "w") as handle:
                handle.write(text)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                os.close(read_end)
                os.close(self.proto_out)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                child_main(job, write_end, workdir, self.isolated_uid)
            except BaseException:
                code = 70
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except BaseException:
                        pass
                os._exit(code)
        os.close(write_end)
        status = self.relay(job["id"], read_end, pid)
        os.close(read_end)
        self.sweep(pid)
        tail = read_tail(os.path.join(workdir, OUTPUT_NAME))
        shutil.rmtree(workdir, ignore_errors=True)
        self.send({"type": "exit", "job": job["id"], "status": status, "output_tail": tail})

    def relay(self, job_id: int, fd: int, pid: int) -> str:
        """Forward the child's frames until it exits; return how it ended.

        Meanwhile the parent may ask (on stdin) to kill the child: a hung check then
        costs a fork, not a new sandbox.
        """
        buffer = bytearray()
        watch = [fd, 0]
        while True:
            ready, _, _ = select.select(watch, [], [], 0.05)
            if 0 in ready:
                self.handle_control(job_id, pid)
            if fd in ready:
                chunk = os.read(fd, 1 << 20)
                if chunk:
                    buffer += chunk
                    if not self.forward(job_id, buffer):
                        kill_tree(pid)
                    continue
                watch = [0]  # every writer closed the pipe: the child is ending
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                deadline = time.monotonic() + 0.2  # drain what it (or what it left) wrote last
                while (
                    fd in watch
                    and time.monotonic() < deadline
                    and select.select([fd], [], [], 0.05)[0]
                ):
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        break
                    buffer += chunk
                    self.forward(job_id, buffer)
                return describe_status(raw)

    def handle_control(self, job_id: int, pid: int) -> None:
        try:
            message = decode(read_frame(0))
        except (EOFError, FrameError):  # the parent is gone: end everything
            kill_tree(pid)
            os._exit(0)
        if message.get("type") == "kill" and message.get("job") == job_id:
            kill_tree(pid)

    def forward(self, job_id: int, buffer: bytearray) -> bool:
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
            self.send(
                {
                    "type": "child",
                    "job": job_id,
                    "frame": torch.frombuffer(bytearray(payload), dtype=torch.uint8),
                }
            )
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


def read_tail(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - OUTPUT_TAIL_BYTES))
            return handle.read().decode("utf-8", "replace")
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
    isolated = args.drop_uid is not None and args.pidns
    Server(proto_out, args.pidns, isolated).serve()


if __name__ == "__main__":
    main()
