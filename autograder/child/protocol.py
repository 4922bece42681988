"""Length-prefixed frames shared by the trusted parent and the sandbox.

Every frame is an 8-byte big-endian length followed by a ``torch.save`` payload.
Both sides read payloads with ``torch.load(weights_only=True)``, which rebuilds
tensors, numbers, strings and plain containers only: nothing in a frame can run
code when it is read. This file is copied into the sandbox, so it imports only
the standard library and torch.
"""

from __future__ import annotations

import io
import os
import struct
from typing import Any

HEADER = struct.Struct(">Q")
MAX_FRAME_BYTES = 64 * 1024 * 1024
# Between the judge and the fork server, a frame's first byte says what it holds:
# MESSAGE + torch.save(dict): a control message either way;
# REQUEST + ENVELOPE(job, cpu seconds) + bytes: a request for the child, passed on as is;
# CHILD + ENVELOPE(job, 0) + bytes: a frame from the child, passed on unread.
MESSAGE, REQUEST, CHILD = b"M", b"R", b"C"
ENVELOPE = struct.Struct(">Qd")


class FrameError(Exception):
    """A frame was cut short, too large or could not be decoded."""


def encode(obj: Any) -> bytes:
    import torch  # imported on first use: the grader launches workers without it

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def decode(payload: bytes) -> Any:
    import torch

    try:
        return torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as exc:  # any malformed payload is the sender's fault
        raise FrameError(f"unreadable frame ({type(exc).__name__}: {exc})"[:300]) from None


def write_frame(fd: int, payload: bytes) -> None:
    data = HEADER.pack(len(payload)) + payload
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_exact(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, max_bytes: int = MAX_FRAME_BYTES) -> bytes:
    (size,) = HEADER.unpack(read_exact(fd, HEADER.size))
    if size > max_bytes:
        raise FrameError(f"frame of {size} bytes exceeds the limit of {max_bytes}")
    return read_exact(fd, size)


def envelope(kind: bytes, job: int, payload: bytes, seconds: float = 0.0) -> bytes:
    """A child's bytes (or bytes for a child) with the job they belong to, unread."""
    return kind + ENVELOPE.pack(job, seconds) + payload


def open_envelope(frame: bytes) -> tuple[int, float, bytes]:
    if len(frame) < 1 + ENVELOPE.size:
        raise FrameError("a frame was cut short")
    job, seconds = ENVELOPE.unpack(frame[1 : 1 + ENVELOPE.size])
    return job, seconds, frame[1 + ENVELOPE.size :]
