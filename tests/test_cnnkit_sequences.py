"""cnnkit.sequences: Speech Commands through torchaudio's real loader (offline, with a fixture
in the real layout), log-mel features, moving-shape videos and the adding problem."""

from __future__ import annotations

import re
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio
import torchaudio.datasets

from tests.conftest import load_cnnkit

cnnkit = load_cnnkit()
SPEECHCOMMANDS = torchaudio.datasets.SPEECHCOMMANDS
SUBSETS = ("training", "validation", "testing")

# --------------------------------------------------------------------------- the Speech Commands fixture


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory):
    """One default-sized fixture for the tests that only read it (writing one takes ~2 s)."""
    root = tmp_path_factory.mktemp("speech")
    cnnkit.write_speechcommands_fixture(root / "fixtures")
    return root


@pytest.fixture(scope="module")
def folder(shared_root) -> Path:
    return shared_root / "fixtures" / "SpeechCommands" / "speech_commands_v0.02"


@pytest.fixture(scope="module")
def splits(shared_root) -> dict:
    """torchaudio's own loader on the fixture, for every subset (None: all clips)."""
    root = shared_root / "fixtures"
    return {subset: SPEECHCOMMANDS(root, subset=subset) for subset in (None, *SUBSETS)}


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.delenv("CNNKIT_DOWNLOAD", raising=False)


def _paths(dataset) -> list[str]:
    return [dataset.get_metadata(i)[0] for i in range(len(dataset))]


def _frames(path: Path) -> int:
    with wave.open(str(path)) as handle:
        return handle.getnframes()


def test_fixture_is_in_the_real_layout(folder):
    assert cnnkit.SPEECH_WORDS == (
        "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    )  # fmt: skip
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(
        [*cnnkit.SPEECH_WORDS, "_background_noise_"]
    )
    for name in ("validation_list.txt", "testing_list.txt", "README.md"):
        assert (folder / name).is_file(), name
    assert "synthetic" in (folder / "README.md").read_text().lower()
    noise = sorted(p.name for p in (folder / "_background_noise_").iterdir())
    assert 1 <= len(noise) <= 2 and all(name.endswith(".wav") for name in noise)
    for word in cnnkit.SPEECH_WORDS:
        names = sorted(p.name for p in (folder / word).iterdir())
        assert len(names) == 24
        assert all(re.fullmatch(r"[0-9a-f]{8}_nohash_\d+\.wav", name) for name in names), names
        speakers = {name.split("_nohash_")[0] for name in names}
        assert len(speakers) < len(names), "speakers say a word several times (n = 0, 1, ...)"
    listed = (folder / "testing_list.txt").read_text().splitlines()
    assert listed and all(re.fullmatch(r"[a-z]+/[0-9a-f]{8}_nohash_\d+\.wav", p) for p in listed)
    assert all((folder / p).is_file() for p in listed), "relative paths word/file.wav"


def test_torchaudio_reads_the_fixture_and_its_subsets_partition_it(splits):
    everything = set(_paths(splits[None]))
    parts = {subset: set(_paths(splits[subset])) for subset in SUBSETS}
    assert len(everything) == len(splits[None]) == 240
    assert sum(len(splits[subset]) for subset in SUBSETS) == len(everything)
    assert set.union(*parts.values()) == everything
    assert not parts["training"] & parts["validation"]
    assert not parts["training"] & parts["testing"]
    assert not parts["validation"] & parts["testing"]
    for subset in ("validation", "testing"):
        assert 0.05 <= len(parts[subset]) / len(everything) <= 0.15, subset
    assert not any("_background_noise_" in path for path in everything), "noise is not an item"
    speakers = {
        subset: {splits[subset].get_metadata(i)[3] for i in range(len(splits[subset]))}
        for subset in SUBSETS
    }
    assert not speakers["training"] & (speakers["validation"] | speakers["testing"])
    assert not speakers["validation"] & speakers["testing"], "split by speaker"
    for subset in SUBSETS:
        labels = {splits[subset].get_metadata(i)[2] for i in range(len(splits[subset]))}
        assert labels == set(cnnkit.SPEECH_WORDS), f"every word in {subset}"
    waveform, sample_rate, label, speaker_id, utterance = splits["training"][0]
    assert waveform.dtype == torch.float32 and waveform.ndim == 2 and waveform.shape[0] == 1
    assert sample_rate == 16000 and label in cnnkit.SPEECH_WORDS
    assert re.fullmatch(r"[0-9a-f]{8}", speaker_id) and isinstance(utterance, int)
    assert 0.01 < waveform.abs().max() <= 1


def test_wav_files_are_16khz_mono_16bit_and_some_are_short(folder, splits):
    lengths = []
    for path in sorted(folder.glob("*/*.wav")):
        with wave.open(str(path)) as handle:
            assert handle.getnchannels() == 1 and handle.getsampwidth() == 2
            assert handle.getframerate() == 16000 and handle.getcomptype() == "NONE"
            if "_nohash_" in path.name:
                lengths.append(handle.getnframes())
    lengths = np.array(lengths)
    short = lengths[lengths < 16000]
    assert ((lengths == 16000) | ((lengths >= 0.7 * 16000) & (lengths <= 0.95 * 16000))).all()
    assert 0.03 <= len(short) / len(lengths) <= 0.2, "about one clip in ten is shorter"
    dataset = splits[None]
    index = next(
        i
        for i in range(len(dataset))
        if _frames(folder.parent / dataset.get_metadata(i)[0]) < 16000
    )
    frames = _frames(folder.parent / dataset.get_metadata(index)[0])
    assert dataset[index][0].shape == (1, frames), "the real loader reads it at its length"


def test_fixture_is_deterministic_and_written_atomically(tmp_path):
    a = cnnkit.write_speechcommands_fixture(tmp_path / "a", per_word=6)
    b = cnnkit.write_speechcommands_fixture(tmp_path / "b", per_word=6)
    c = cnnkit.write_speechcommands_fixture(tmp_path / "c", per_word=6, seed=1)
    assert a == tmp_path / "a" / "SpeechCommands" / "speech_commands_v0.02"
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in files), "byte-identical"
    assert (a / "testing_list.txt").read_text() != (c / "testing_list.txt").read_text()
    again = cnnkit.write_speechcommands_fixture(tmp_path / "a", per_word=3)  # replaces it
    assert len(list(again.glob("*/*_nohash_*.wav"))) == 30
    for root in ("a", "b", "c"):
        assert [p.name for p in (tmp_path / root / "SpeechCommands").iterdir()] == [
            "speech_commands_v0.02"
        ], "no staging folder left behind"


def test_an_interrupted_write_leaves_nothing_behind(tmp_path, monkeypatch):
    written = []

    def failing(path, samples):
        written.append(path)
        if len(written) == 5:
            raise KeyboardInterrupt

    module_globals = cnnkit.write_speechcommands_fixture.__globals__
    monkeypatch.setitem(module_globals, "_write_wav", failing)
    with pytest.raises(KeyboardInterrupt):
        cnnkit.write_speechcommands_fixture(tmp_path)
    assert list((tmp_path / "SpeechCommands").iterdir()) == []


# --------------------------------------------------------------------------- load_speechcommands


def test_offline_falls_back_to_the_fixture_and_reuses_it(tmp_path, offline, monkeypatch, capsys):
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path))
    training = cnnkit.load_speechcommands()
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "synthetic fixture (200 clips)" in out
    assert str(tmp_path) in out and "CNNKIT_DOWNLOAD=1" in out
    folder = tmp_path / "fixtures" / "SpeechCommands" / "speech_commands_v0.02"
    assert isinstance(training, SPEECHCOMMANDS) and Path(training._path) == folder
    clip = next(folder.glob("yes/*.wav"))
    before = clip.stat().st_mtime_ns
    testing = cnnkit.load_speechcommands("testing", root=tmp_path)
    assert len(testing) == 20 and clip.stat().st_mtime_ns == before, "reused, not rewritten"
    assert "synthetic fixture (20 clips)" in capsys.readouterr().out
    everything = cnnkit.load_speechcommands(None, root=tmp_path)
    assert len(everything) == 240
    (folder / "testing_list.txt").unlink()  # damaged: it is written again
    assert len(cnnkit.load_speechcommands("testing", root=tmp_path)) == 20
    assert [p.name for p in (tmp_path / "fixtures" / "SpeechCommands").iterdir()] == [
        "speech_commands_v0.02"
    ]


def test_the_real_data_set_is_used_when_it_is_there(tmp_path, offline, capsys):
    folder = cnnkit.write_speechcommands_fixture(tmp_path, per_word=3)  # stands in for it
    for index in range(20):  # the real v0.02 has 35 words
        (folder / f"word{index:02}").mkdir()
    dataset = cnnkit.load_speechcommands(None, root=tmp_path)
    assert Path(dataset._path) == folder and len(dataset) == 30
    assert len(cnnkit.load_speechcommands("validation", root=tmp_path)) == 10
    assert capsys.readouterr().out == ""
    assert not (tmp_path / "fixtures").exists()


class _RecordingSPEECHCOMMANDS(torchaudio.datasets.SPEECHCOMMANDS):
    """Records how it was built and reads nothing: no real data, no network."""

    calls: list[dict] = []

    def __init__(self, root, url="speech_commands_v0.02", folder_in_archive="SpeechCommands",
                 download=False, subset=None):  # fmt: skip
        type(self).calls.append({"root": str(root), "download": download, "subset": subset})


def test_download_is_asked_for_only_with_cnnkit_download(tmp_path, monkeypatch):
    _RecordingSPEECHCOMMANDS.calls = []
    monkeypatch.setattr(torchaudio.datasets, "SPEECHCOMMANDS", _RecordingSPEECHCOMMANDS)
    monkeypatch.setenv("CNNKIT_DOWNLOAD", "1")
    cnnkit.load_speechcommands("validation", root=tmp_path)
    assert _RecordingSPEECHCOMMANDS.calls == [
        {"root": str(tmp_path), "download": True, "subset": "validation"}
    ]
    assert not (tmp_path / "fixtures").exists(), "no fixture when downloading"


def test_importing_cnnkit_does_not_import_torchaudio():
    source = Path(__file__).resolve().parents[1] / "source"
    code = (
        f"import sys; sys.path.insert(0, {str(source)!r}); import cnnkit; "
        "assert 'torchaudio' not in sys.modules, 'torchaudio imported'; "
        "assert cnnkit.SPEECH_WORDS and cnnkit.MOTIONS"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- speech_features


class _Counting(torch.utils.data.Dataset):
    """A data set that counts how many clips it decodes."""

    def __init__(self, dataset):
        self.dataset, self.decoded = dataset, 0

    def __len__(self):
        return len(self.dataset)

    def get_metadata(self, index):
        return self.dataset.get_metadata(index)

    def __getitem__(self, index):
        self.decoded += 1
        return self.dataset[index]


def test_features_shapes_and_values(splits):
    features, labels = cnnkit.speech_features(splits["testing"])
    assert features.shape == (20, 40, 101) and features.dtype == torch.float32
    assert labels.shape == (20,) and labels.dtype == torch.int64
    assert torch.isfinite(features).all() and set(labels.tolist()) == set(range(10))
    assert features.min() >= np.log(1e-6) - 1e-4, "log(mel + 1e-6)"
    # the first clip by hand: padded to 1 s, torchaudio's mel spectrogram, log
    waveform, _, label, *_ = splits["testing"][0]
    padded = torch.nn.functional.pad(waveform[0], (0, 16000 - waveform.shape[1]))
    mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=480, hop_length=160, n_mels=40)
    torch.testing.assert_close(features[0], torch.log(mel(padded) + 1e-6))
    assert cnnkit.SPEECH_WORDS[labels[0]] == label
    assert cnnkit.speech_features(splits["testing"], n_mels=64)[0].shape == (20, 64, 101)


def test_features_limit_and_words(splits):
    training = splits["training"]
    x, y = cnnkit.speech_features(training, limit=7)
    assert x.shape == (7, 40, 101) and y.shape == (7,)
    x2, y2 = cnnkit.speech_features(training, limit=7)
    assert torch.equal(x, x2) and torch.equal(y, y2), "a seeded selection"
    counting = _Counting(training)
    x, y = cnnkit.speech_features(counting, words=("stop", "go"))
    assert len(y) == 40 and set(y.tolist()) == {0, 1}, "labels index into words"
    assert counting.decoded == 40, "other words are filtered out without decoding them"
    x, y = cnnkit.speech_features(training, words=["go"], limit=100)
    assert len(y) == 20 and (y == 0).all(), "a limit above the count keeps all"
    with pytest.raises(ValueError, match="no clip"):
        cnnkit.speech_features(training, words=("cat", "dog"))


class _NoCodec(torch.utils.data.Dataset):
    """A SPEECHCOMMANDS whose torchaudio decoding fails as it does without FFmpeg."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):
        return getattr(self.dataset, name)

    def __getitem__(self, index):
        raise RuntimeError("Could not load libtorchcodec. Likely causes: FFmpeg is not installed")


def test_features_without_ffmpeg_read_the_wav_files_and_say_so(splits, capsys):
    expected = cnnkit.speech_features(splits["testing"])
    capsys.readouterr()
    subset = torch.utils.data.Subset(_NoCodec(splits["testing"]), list(range(20)))
    got = cnnkit.speech_features(subset)
    out = capsys.readouterr().out
    assert out.count("wave module") == 1, out
    torch.testing.assert_close(got[0], expected[0])
    assert torch.equal(got[1], expected[1])


def test_other_loading_errors_are_not_hidden(splits):
    class Broken(_NoCodec):
        def __getitem__(self, index):
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        cnnkit.speech_features(Broken(splits["testing"]))


def test_the_words_are_distinguishable(splits):
    """A nearest-class-mean classifier on time-averaged log-mels, fitted on training
    speakers, recognises the held-out speakers' words far above chance (10%)."""
    x, y = cnnkit.speech_features(splits["training"])
    means = torch.stack([x[y == c].mean(-1).mean(0) for c in range(10)])
    for subset in ("testing", "validation"):
        xs, ys = cnnkit.speech_features(splits[subset])
        accuracy = (torch.cdist(xs.mean(-1), means).argmin(1) == ys).float().mean().item()
        assert accuracy > 0.5, f"{subset}: nearest-class-mean accuracy {accuracy:.2f}"


# --------------------------------------------------------------------------- moving shapes


def _centroids(videos: torch.Tensor) -> torch.Tensor:
    """``(n, frames, 2)`` (y, x) centroids of the bright (shape) pixels of each frame."""
    weight = (videos[:, 0] - 0.5).clamp(min=0)
    grid = torch.arange(videos.shape[-1], dtype=torch.float32)
    total = weight.sum((-2, -1))
    return torch.stack(
        [
            (weight.sum(-1) * grid).sum(-1) / total,
            (weight.sum(-2) * grid).sum(-1) / total,
        ],
        -1,
    )


def test_moving_shapes_shapes_range_and_balance():
    videos, labels = cnnkit.moving_shapes(200)
    assert videos.shape == (200, 1, 8, 32, 32) and videos.dtype == torch.float32
    assert labels.shape == (200,) and labels.dtype == torch.int64
    assert videos.min() >= 0 and videos.max() <= 1
    assert torch.bincount(labels, minlength=4).tolist() == [50] * 4
    assert cnnkit.MOTIONS == ("right", "left", "down", "up")
    small, _ = cnnkit.moving_shapes(5, frames=4, size=16, seed=3)
    assert small.shape == (5, 1, 4, 16, 16)
    background = videos[videos < 0.5]
    assert 0.01 < background.mean() < 0.05, "light noise, clipped to [0, 1]"


def test_moving_shapes_is_deterministic():
    a, la = cnnkit.moving_shapes(30, seed=1)
    b, lb = cnnkit.moving_shapes(30, seed=1)
    c, _ = cnnkit.moving_shapes(30, seed=2)
    assert torch.equal(a, b) and torch.equal(la, lb) and not torch.equal(a, c)


def test_shapes_move_in_the_labelled_direction():
    videos, labels = cnnkit.moving_shapes(400)
    centroids = _centroids(videos)
    step = centroids[:, -1] - centroids[:, 0]  # (dy, dx) from the first to the last frame
    expected = torch.tensor([[0, 1], [0, -1], [1, 0], [-1, 0]], dtype=torch.float32)[labels]
    along = (step * expected).sum(-1)
    across = (step * expected.flip(-1)).sum(-1)
    assert (along >= 6).all(), "1-2 px per frame over 7 steps"
    assert (along <= 15).all() and (across.abs() < 1).all()


def test_a_single_frame_does_not_tell_the_direction():
    videos, labels = cnnkit.moving_shapes(2000)
    centroids = _centroids(videos)
    middle = centroids[:, videos.shape[2] // 2]
    means = torch.stack([middle[labels == c].mean(0) for c in range(4)])
    spreads = torch.stack([middle[labels == c].std(0) for c in range(4)])
    assert (means - means.mean(0)).abs().max() < 1.5, means
    assert (spreads - spreads.mean(0)).abs().max() < 1.0, spreads
    clip_means = centroids.mean(1)  # the average position over the clip: no hint at all
    means = torch.stack([clip_means[labels == c].mean(0) for c in range(4)])
    assert (means - means.mean(0)).abs().max() < 0.5, means


# --------------------------------------------------------------------------- adding problem


def test_adding_problem():
    inputs, targets = cnnkit.adding_problem(500, 40)
    assert inputs.shape == (500, 2, 40) and inputs.dtype == torch.float32
    assert targets.shape == (500,) and targets.dtype == torch.float32
    values, markers = inputs[:, 0], inputs[:, 1]
    assert (values >= 0).all() and (values < 1).all()
    assert set(markers.unique().tolist()) == {0.0, 1.0}
    assert (markers[:, :20].sum(1) == 1).all() and (markers[:, 20:].sum(1) == 1).all()
    torch.testing.assert_close(targets, (values * markers).sum(1))
    first, second = markers[:, :20].argmax(1), markers[:, 20:].argmax(1)
    assert first.unique().numel() > 15 and second.unique().numel() > 15, "uniform positions"
    again = cnnkit.adding_problem(500, 40)
    assert torch.equal(inputs, again[0]) and torch.equal(targets, again[1])
    assert not torch.equal(inputs, cnnkit.adding_problem(500, 40, seed=1)[0])
    odd, _ = cnnkit.adding_problem(10, 7)
    assert (odd[:, 1, :3].sum(1) == 1).all() and (odd[:, 1, 3:].sum(1) == 1).all()
