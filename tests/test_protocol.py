"""Can frames carry tensors both ways while nothing in a frame can run code on load?"""

from __future__ import annotations

import io
import os

import pytest
import torch

from autograder.child.protocol import FrameError, decode, encode, read_frame, write_frame


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_round_trip_through_a_pipe():
    message = {
        "type": "probe_result",
        "payload": {"value": torch.arange(6.0).view(2, 3), "ok": True, "ops": ["add"]},
    }
    read_end, write_end = os.pipe()
    write_frame(write_end, encode(message))
    back = decode(read_frame(read_end))
    assert torch.equal(back["payload"]["value"], message["payload"]["value"]) and back["payload"][
        "ops"
    ] == ["add"]


def test_pickled_code_is_refused():
    buffer = io.BytesIO()
    torch.save({"x": Exploit()}, buffer, pickle_protocol=2)
    with pytest.raises(FrameError, match="unreadable frame"):
        decode(buffer.getvalue())


def test_garbage_and_oversized_frames_are_refused():
    with pytest.raises(FrameError):
        decode(b"not a torch file")
    read_end, write_end = os.pipe()
    os.write(write_end, (2**40).to_bytes(8, "big"))
    with pytest.raises(FrameError, match="exceeds"):
        read_frame(read_end)


def test_the_trace_names_torch_functions_whose_aten_form_hides_them():
    """F.cross_entropy with probability targets decomposes into log_softmax and sums (no
    nll_loss in ATen); the trace still names it."""
    from autograder.child.objects import ObjectServer

    namespace: dict = {}
    exec(
        "import torch\nimport torch.nn.functional as F\n"
        "def soft_ce(x, t):\n    return F.cross_entropy(x, t)\n",
        namespace,
    )
    server = ObjectServer(namespace, "cpu")
    logits, target = torch.randn(4, 3), torch.softmax(torch.randn(4, 3), 1)
    traced = server.handle(
        {"op": "call", "target": {"global": "soft_ce"}, "args": [logits, target], "trace": True}
    )
    assert traced["ok"] and "cross_entropy" in traced["ops"], traced["ops"]
    assert not any(op.startswith("nll_loss") for op in traced["ops"])
    plain = server.handle({"op": "call", "target": {"global": "soft_ce"}, "args": [logits, target]})
    assert plain["ops"] is None


def test_a_state_dict_error_keeps_the_keys_it_names():
    from autograder.child.objects import describe_error

    net = torch.nn.Linear(2, 2)
    try:
        net.load_state_dict({"weight": torch.zeros(2, 2), "extra": torch.zeros(1)})
    except RuntimeError as exc:
        message = describe_error(exc)["message"]
    assert "Missing key(s)" in message and '"bias"' in message
    assert "Unexpected key(s)" in message and '"extra"' in message
    assert describe_error(ValueError("first\nsecond"))["message"] == "first"
