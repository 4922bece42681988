"""cnnkit.challenge: the weights file a Lab 2 student saves is read exactly as the grader reads it."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "source"))

from cnnkit import challenge  # noqa: E402


def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))


def test_saved_weights_load_strictly_into_a_fresh_model(tmp_path):
    model = net()
    path = challenge.save_weights(model, tmp_path / "model.pt")
    state = challenge.read_state(path)
    assert all(value.device.type == "cpu" for value in state.values())
    assert "1.running_mean" in state  # buffers travel with the parameters
    fresh = challenge.load_weights(
        torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)), path
    )
    assert not fresh.training
    for name, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not a zip file", "could not be read with torch.load(weights_only=True)"),
        ("pickled", "could not be read with torch.load(weights_only=True)"),
        ([torch.zeros(1)], "holds a value of type list, not a state dict"),
        ("checkpoint", "'epoch' holds a value of type int, not a tensor"),
    ],
)
def test_a_bad_file_gets_a_message_that_says_what_to_do(tmp_path, payload, message):
    path = tmp_path / "model.pt"
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    elif payload == "pickled":
        torch.save(net(), path)
    elif payload == "checkpoint":
        torch.save({"weight": torch.zeros(1), "epoch": 3}, path)
    else:
        torch.save(payload, path)
    with pytest.raises(ValueError, match="model.pt") as error:
        challenge.read_state(path)
    assert message in str(error.value)
    assert "\n" not in str(error.value).strip()


def test_missing_file_and_wrong_model_are_named(tmp_path):
    with pytest.raises(ValueError, match="there is no weights file model.pt"):
        challenge.read_state(tmp_path / "model.pt")
    path = challenge.save_weights(torch.nn.Linear(4, 2), tmp_path / "model.pt")
    with pytest.raises(ValueError, match="model.pt does not fit this model"):
        challenge.load_weights(net(), path)


def test_parameter_count_and_latency():
    model = net()
    assert challenge.parameter_count(model) == 3 * 4 * 9 + 4 + 4 + 4
    ms = challenge.latency_ms(model, image_size=16, min_run_time=0.05)
    assert 0 < ms < 1000
    assert model.training is False  # measured in eval mode
