"""Sequences: Speech Commands (torchaudio's real loader, or an offline fixture in the real
layout), log-mel features, moving-shape videos for a Conv3d and the TCN adding problem.

torchaudio is imported inside the functions that need it, never when cnnkit is imported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .env import data_root, download_allowed

SPEECH_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
MOTIONS = ("right", "left", "down", "up")

# --------------------------------------------------------------------------- Speech Commands

_SAMPLE_RATE = 16000
_ARCHIVE_FOLDER = "SpeechCommands"  # torchaudio's default folder_in_archive
_VERSION_FOLDER = "speech_commands_v0.02"  # torchaudio's default url
_NOISE_FOLDER = "_background_noise_"

# How the fixture says each word: segments with a span (start, duration) in seconds (before
# _TEMPO and the speaker's speed). A voiced segment is a harmonic tone on the speaker's pitch
# (times a contour from f0[0] to f0[1]) shaped by three formants that move through the listed
# (F1, F2, F3) keyframes in Hz; a noise segment is a band of noise (a hiss, or a short burst
# for a stop consonant).
_WORD_SOUNDS: dict[str, list[dict]] = {
    "yes": [
        {"span": (0.00, 0.22), "f0": (1.00, 1.18), "formants": [(300, 2300, 3000), (550, 1850, 2550)]},
        {"span": (0.21, 0.16), "band": (4500, 7500), "gain": 0.4},
    ],
    "no": [
        {"span": (0.00, 0.07), "f0": (1.12, 1.08), "formants": [(250, 1800, 2700), (260, 1700, 2700)]},
        {"span": (0.06, 0.28), "f0": (1.08, 0.80), "formants": [(520, 1150, 3000), (480, 950, 3000)]},
    ],
    "up": [
        {"span": (0.00, 0.13), "f0": (1.00, 1.00), "formants": [(720, 1300, 2600), (650, 1200, 2500)]},
        {"span": (0.18, 0.03), "band": (400, 1600), "gain": 0.8},
    ],
    "down": [
        {"span": (0.00, 0.03), "band": (2500, 5000), "gain": 0.9},
        {"span": (0.04, 0.32), "f0": (1.05, 0.85), "formants": [(850, 1600, 3000), (600, 1000, 2800), (350, 700, 2600)]},
    ],
    "left": [
        {"span": (0.00, 0.20), "f0": (1.00, 1.06), "formants": [(350, 1000, 2700), (580, 1750, 2500)]},
        {"span": (0.21, 0.11), "band": (1500, 4000), "gain": 0.3},
        {"span": (0.33, 0.02), "band": (3000, 6000), "gain": 0.6},
    ],
    "right": [
        {"span": (0.00, 0.30), "f0": (1.00, 0.90), "formants": [(350, 1100, 1600), (720, 1200, 2500), (400, 2100, 2800)]},
        {"span": (0.34, 0.03), "band": (3000, 6000), "gain": 0.6},
    ],
    "on": [
        {"span": (0.00, 0.26), "f0": (0.95, 1.00), "formants": [(700, 1050, 2500), (650, 1100, 2400)]},
        {"span": (0.25, 0.12), "f0": (1.00, 0.95), "formants": [(250, 2000, 2800), (250, 2000, 2800)]},
    ],
    "off": [
        {"span": (0.00, 0.17), "f0": (1.00, 0.95), "formants": [(650, 1000, 2500), (620, 1050, 2500)]},
        {"span": (0.16, 0.24), "band": (1200, 6500), "gain": 0.25},
    ],
    "stop": [
        {"span": (0.00, 0.15), "band": (3800, 7800), "gain": 0.45},
        {"span": (0.19, 0.015), "band": (2500, 5000), "gain": 0.6},
        {"span": (0.21, 0.16), "f0": (1.12, 0.95), "formants": [(600, 950, 2500), (560, 1000, 2500)]},
        {"span": (0.41, 0.03), "band": (400, 1600), "gain": 0.8},
    ],
    "go": [
        {"span": (0.00, 0.04), "band": (1000, 2500), "gain": 0.8},
        {"span": (0.035, 0.30), "f0": (0.92, 1.20), "formants": [(380, 700, 2100), (330, 620, 2000)]},
    ],
}  # fmt: skip
_TEMPO = 1.4  # the table's times are stretched by this (words last 0.3-0.6 s)
_FORMANT_GAINS = np.array([1.0, 0.8, 0.5])
_FORMANT_WIDTHS = np.array([70.0, 90.0, 120.0])  # Hz
_FORMANT_FLOOR = 0.003


def _envelope(count: int, ramp: int) -> np.ndarray:
    """Raised-cosine fade in and out over ``ramp`` samples each."""
    envelope = np.ones(count)
    ramp = max(1, min(ramp, count // 2))
    fade = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    envelope[:ramp] = fade
    envelope[count - ramp :] = fade[::-1]
    return envelope


def _band_noise(count: int, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """White noise kept between ``low`` and ``high`` Hz, scaled to unit standard deviation."""
    spectrum = np.fft.rfft(rng.standard_normal(count))
    frequencies = np.fft.rfftfreq(count, 1 / _SAMPLE_RATE)
    spectrum[(frequencies < low) | (frequencies > high)] = 0
    noise = np.fft.irfft(spectrum, count)
    return noise / (noise.std() + 1e-12)


def _voiced(
    count: int, pitch: float, contour: tuple, keyframes: list, formant_scale: float
) -> np.ndarray:
    """A harmonic tone on a pitch contour, its harmonics weighted by moving formants."""
    position = np.linspace(0, 1, count)
    f0 = pitch * np.interp(position, [0, 1], contour)
    keyframes = np.asarray(keyframes, dtype=np.float64) * formant_scale
    stops = np.linspace(0, 1, len(keyframes))
    formants = np.stack([np.interp(position, stops, keyframes[:, i]) for i in range(3)])  # (3, T)
    phase = 2 * np.pi * np.cumsum(f0) / _SAMPLE_RATE
    harmonics = np.arange(1, int(5500 // f0.max()) + 1)[:, None]  # (K, 1)
    frequency = harmonics * f0[None]  # (K, T)
    resonance = sum(
        _FORMANT_GAINS[i] / (1 + ((frequency - formants[i][None]) / _FORMANT_WIDTHS[i]) ** 2)
        for i in range(3)
    )
    weight = (_FORMANT_FLOOR + resonance) / np.sqrt(harmonics)
    tone = (weight * np.sin(harmonics * phase[None])).sum(0)
    return tone / (np.abs(tone).max() + 1e-12) * _envelope(count, int(0.02 * _SAMPLE_RATE))


def _utterance(word: str, speaker: dict, rng: np.random.Generator) -> np.ndarray:
    """One spoken ``word`` (no leading or trailing silence) in a speaker's voice."""
    speed = _TEMPO * float(np.clip(speaker["speed"] * rng.uniform(0.97, 1.03), 0.9, 1.1))
    pitch = speaker["pitch"] * rng.uniform(0.95, 1.05)
    segments = _WORD_SOUNDS[word]
    end = max(start + duration for start, duration in (s["span"] for s in segments))
    signal = np.zeros(int(np.ceil(end * speed * _SAMPLE_RATE)) + 1)
    for segment in segments:
        start, duration = segment["span"]
        first = int(start * speed * _SAMPLE_RATE)
        count = max(8, int(duration * speed * _SAMPLE_RATE))
        if "band" in segment:
            low, high = segment["band"]
            sound = (
                segment["gain"]
                * rng.uniform(0.8, 1.2)
                * _band_noise(count, low, high, rng)
                * _envelope(count, int(0.004 * _SAMPLE_RATE))
                / 3
            )
        else:
            sound = _voiced(
                count, pitch, segment["f0"], segment["formants"], speaker["formant_scale"]
            )
        signal[first : first + count] += sound
    return signal


def _write_wav(path: Path, samples: np.ndarray) -> None:
    """16 kHz mono 16-bit PCM; ``samples`` in [-1, 1]."""
    import wave  # here, not at the top: ``from cnnkit import *`` would export the name

    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(_SAMPLE_RATE)
        handle.writeframes(pcm.tobytes())


def _speakers(count: int, rng: np.random.Generator) -> list[dict]:
    """Speakers with 8-hex-digit ids (as in the real set) and their voices."""
    ids: list[str] = []
    while len(ids) < count:
        speaker_id = f"{int(rng.integers(0, 2**32)):08x}"
        if speaker_id not in ids:
            ids.append(speaker_id)
    return [
        {
            "id": speaker_id,
            "pitch": float(np.exp(rng.uniform(np.log(90), np.log(250)))),
            "formant_scale": rng.uniform(0.93, 1.07),
            "speed": rng.uniform(0.92, 1.08),
            "loudness": rng.uniform(0.35, 0.5),
            "noise": float(10 ** rng.uniform(-3.2, -2.9)),
        }
        for speaker_id in ids
    ]


_FIXTURE_README = """\
# Synthetic Speech Commands fixture

This is NOT the Speech Commands data set. It is a small synthetic stand-in written by
`cnnkit.write_speechcommands_fixture` in the real on-disk layout of
`speech_commands_v0.02` (word folders of `<speaker>_nohash_<n>.wav` files, 16 kHz mono
16-bit PCM, `validation_list.txt`, `testing_list.txt`, `_background_noise_/`), so that
`torchaudio.datasets.SPEECHCOMMANDS` reads it offline. Each of the ten command words
({words}) is a synthetic harmonic "voice" with word-specific formants, timing, pitch
contour and noise bursts; speakers differ in pitch, speed, loudness and background noise.

Set CNNKIT_DOWNLOAD=1 to download the real data set (Warden 2018, CC BY 4.0).
"""


def write_speechcommands_fixture(root: str | Path, per_word: int = 24, seed: int = 0) -> Path:
    """Write a tiny Speech Commands in the real layout; returns its ``speech_commands_v0.02`` folder.

    ``root/SpeechCommands/speech_commands_v0.02/<word>/<speaker>_nohash_<n>.wav`` for the
    ten ``SPEECH_WORDS`` (``per_word`` clips each), ``_background_noise_/``,
    ``validation_list.txt`` and ``testing_list.txt`` (split by speaker, about 10% each),
    exactly as ``torchaudio.datasets.SPEECHCOMMANDS(root)`` reads them. Deterministic for
    a seed. Most clips last 1 s; about one in ten is shorter, as in the real set.
    """
    import shutil
    import tempfile

    final = Path(root) / _ARCHIVE_FOLDER / _VERSION_FOLDER
    final.parent.mkdir(parents=True, exist_ok=True)
    # Written in a staging folder and renamed: an interrupted write, or two notebooks
    # sharing a data folder, never leave a half-written fixture behind.
    folder = Path(tempfile.mkdtemp(prefix=".speechcommands-fixture-", dir=final.parent))
    try:
        _write_speechcommands(folder, per_word, seed)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final, ignore_errors=True)
    try:
        folder.rename(final)
    except OSError:  # another process renamed its complete copy first
        shutil.rmtree(folder, ignore_errors=True)
    return final


def _write_speechcommands(folder: Path, per_word: int, seed: int) -> None:
    """The fixture's files, written into ``folder`` (the staging folder)."""
    rng = np.random.default_rng(seed)
    speakers = _speakers(max(3, -(-per_word // 2)), rng)
    # Split by speaker, as the real set does (there by a hash of the speaker id): about 10%
    # validation, 10% testing. Every speaker says every word (per_word / 2 speakers, two
    # utterances each); the held-out speakers are the last ones, so tiny fixtures still train.
    held_out = max(1, round(0.1 * len(speakers)))  # speakers per held-out split
    split_of = {s["id"]: "training" for s in speakers}
    for s in speakers[len(speakers) - held_out :]:
        split_of[s["id"]] = "validation"
    for s in speakers[len(speakers) - 2 * held_out : len(speakers) - held_out]:
        split_of[s["id"]] = "testing"
    lists: dict[str, list[str]] = {"validation": [], "testing": []}
    for word_index, word in enumerate(SPEECH_WORDS):
        (folder / word).mkdir()
        for clip in range(per_word):
            speaker = speakers[clip % len(speakers)]
            utterance = clip // len(speakers)
            clip_rng = np.random.default_rng([seed, word_index, clip])
            length = _SAMPLE_RATE
            if clip_rng.random() < 0.1:
                length = int(clip_rng.uniform(0.7, 0.95) * _SAMPLE_RATE)
            spoken = _utterance(word, speaker, clip_rng)[: length - 320]
            onset = int(clip_rng.integers(160, length - len(spoken) - 159))
            samples = speaker["noise"] * clip_rng.standard_normal(length)
            gain = speaker["loudness"] * clip_rng.uniform(0.9, 1.1)
            samples[onset : onset + len(spoken)] += gain * spoken / (np.abs(spoken).max() + 1e-12)
            name = f"{speaker['id']}_nohash_{utterance}.wav"
            _write_wav(folder / word / name, samples)
            if split_of[speaker["id"]] in lists:
                lists[split_of[speaker["id"]]].append(f"{word}/{name}")
    for split, paths in lists.items():
        (folder / f"{split}_list.txt").write_text("".join(f"{p}\n" for p in sorted(paths)))
    noise_folder = folder / _NOISE_FOLDER
    noise_folder.mkdir()
    noise_rng = np.random.default_rng([seed, len(SPEECH_WORDS)])
    white = noise_rng.standard_normal(3 * _SAMPLE_RATE)
    _write_wav(noise_folder / "white_noise.wav", 0.1 * white / np.abs(white).max())
    spectrum = np.fft.rfft(noise_rng.standard_normal(3 * _SAMPLE_RATE))
    spectrum /= np.sqrt(np.maximum(np.fft.rfftfreq(3 * _SAMPLE_RATE, 1 / _SAMPLE_RATE), 20))
    pink = np.fft.irfft(spectrum, 3 * _SAMPLE_RATE)
    _write_wav(noise_folder / "pink_noise.wav", 0.1 * pink / np.abs(pink).max())
    (folder / "README.md").write_text(_FIXTURE_README.format(words=", ".join(SPEECH_WORDS)))


def _fixture_complete(folder: Path) -> bool:
    needed = ["README.md", "validation_list.txt", "testing_list.txt"]
    return all((folder / name).is_file() for name in needed) and all(
        (folder / word).is_dir() for word in SPEECH_WORDS
    )


def _real_speechcommands_present(folder: Path) -> bool:
    if not (folder / "validation_list.txt").is_file():
        return False
    words = [p for p in folder.iterdir() if p.is_dir() and p.name != _NOISE_FOLDER]
    return len(words) >= 30


def load_speechcommands(subset: str | None = "training", root: str | Path | None = None):
    """Speech Commands v0.02 through torchaudio's real ``SPEECHCOMMANDS`` loader.

    ``subset``: ``"training"``, ``"validation"``, ``"testing"`` or ``None`` (all clips).
    Uses the real data set under ``root`` (default ``data_root()``) when it is there,
    downloads it when ``CNNKIT_DOWNLOAD=1``, and otherwise falls back, visibly, to a
    small synthetic fixture in the same layout (under ``root/fixtures``).
    Items are ``(waveform (1, L), 16000, label, speaker_id, utterance_number)``.
    """
    from torchaudio.datasets import SPEECHCOMMANDS

    root = Path(root or data_root())
    if _real_speechcommands_present(root / _ARCHIVE_FOLDER / _VERSION_FOLDER):
        return SPEECHCOMMANDS(str(root), download=False, subset=subset)
    if download_allowed():
        root.mkdir(parents=True, exist_ok=True)
        return SPEECHCOMMANDS(str(root), download=True, subset=subset)
    fixture_root = root / "fixtures"
    if not _fixture_complete(fixture_root / _ARCHIVE_FOLDER / _VERSION_FOLDER):
        write_speechcommands_fixture(fixture_root)
    dataset = SPEECHCOMMANDS(str(fixture_root), download=False, subset=subset)
    print(
        f"Speech Commands: real data not found under {root}; using the synthetic fixture ({len(dataset)} clips). Set CNNKIT_DOWNLOAD=1 for the real data set."
    )
    return dataset


def _speech_label(dataset, index: int) -> str:
    """An item's label, without decoding its audio where the data set allows it."""
    if isinstance(dataset, torch.utils.data.Subset):
        return _speech_label(dataset.dataset, dataset.indices[index])
    if hasattr(dataset, "get_metadata"):
        return dataset.get_metadata(index)[2]
    return dataset[index][2]


def _read_wav(path: str) -> tuple[torch.Tensor, int]:
    """A 16-bit PCM WAV file as ``(channels, samples)`` float32 in [-1, 1), with Python's
    ``wave`` module (the format of every Speech Commands clip)."""
    import wave

    with wave.open(path, "rb") as handle:
        if handle.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV files can be read without FFmpeg")
        frames = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
        channels, rate = handle.getnchannels(), handle.getframerate()
    samples = torch.from_numpy(frames.astype(np.float32) / 32768.0)
    return samples.reshape(-1, channels).T.contiguous(), rate


def _speech_item(dataset, index: int, decoder: list) -> tuple[torch.Tensor, int, str]:
    """``(waveform, sample_rate, label)`` of one clip through the data set's own loading
    (torchaudio decodes with torchcodec, which needs FFmpeg's shared libraries). Where
    those are missing, the clip's WAV file is read with ``wave`` instead, and the first
    time that happens the reason is printed once."""
    if decoder[0] is None:
        try:
            return dataset[index][:3]
        except (ImportError, OSError, RuntimeError) as exc:
            if "codec" not in str(exc).lower() and "ffmpeg" not in str(exc).lower():
                raise
            print(
                "Speech Commands: torchaudio cannot decode audio here (torchcodec needs "
                "FFmpeg's libraries, e.g. Debian's libavcodec59); reading the WAV files "
                "with Python's wave module instead."
            )
            decoder[0] = "wave"
    base, inner = dataset, index
    while isinstance(base, torch.utils.data.Subset):
        base, inner = base.dataset, base.indices[inner]
    relative, _, label = base.get_metadata(inner)[:3]
    waveform, sample_rate = _read_wav(str(Path(base._archive) / relative))
    return waveform, sample_rate, label


def speech_features(
    dataset,
    words=SPEECH_WORDS,
    limit: int | None = None,
    n_mels: int = 40,
    device="cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel features ``(N, n_mels, 101)`` float32 and labels ``(N,)`` int64 (indices into ``words``).

    Keeps the clips of ``dataset`` whose label is one of ``words`` (at most ``limit`` of
    them: the first ``limit`` of a seeded permutation, kept in data set order), pads or
    trims each to 1 s (16000 samples) and takes ``log(mel + 1e-6)`` of an ``n_mels``-band
    mel spectrogram with 30 ms windows every 10 ms. A progress bar shows above 2000 clips.
    """
    import torchaudio

    words = tuple(words)
    wanted = {word: index for index, word in enumerate(words)}
    indices = [i for i in range(len(dataset)) if _speech_label(dataset, i) in wanted]
    if not indices:
        raise ValueError(
            f"speech_features: no clip of the data set ({len(dataset)} clips) has a label in {words}"
        )
    if limit is not None and limit < len(indices):
        order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(0))
        indices = [indices[i] for i in sorted(order[:limit].tolist())]
    if len(indices) > 2000:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc="loading clips", unit="clip")
    waveforms = torch.zeros(len(indices), _SAMPLE_RATE)
    labels = torch.empty(len(indices), dtype=torch.int64)
    decoder = [None]  # None: torchaudio's own loading; "wave": the fallback below
    for row, index in enumerate(indices):
        waveform, sample_rate, label = _speech_item(dataset, index, decoder)
        if sample_rate != _SAMPLE_RATE:
            waveform = torchaudio.functional.resample(waveform, sample_rate, _SAMPLE_RATE)
        waveform = waveform.reshape(-1, waveform.shape[-1]).mean(0)[:_SAMPLE_RATE]
        waveforms[row, : len(waveform)] = waveform
        labels[row] = wanted[label]
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=_SAMPLE_RATE, n_fft=480, win_length=480, hop_length=160, n_mels=n_mels
    ).to(device)
    features = torch.cat(
        [torch.log(mel(chunk.to(device)) + 1e-6) for chunk in waveforms.split(1024)]
    )
    return features.float(), labels.to(device)


# --------------------------------------------------------------------------- moving shapes (Conv3d)


def _shape_stamp(kind: int, side: int) -> np.ndarray:
    """A filled square (0), disc (1) or cross (2), ``side`` x ``side``, as a float mask."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    centre = (side - 1) / 2
    if kind == 0:
        return np.ones((side, side), np.float32)
    if kind == 1:
        return ((yy - centre) ** 2 + (xx - centre) ** 2 <= (side / 2) ** 2).astype(np.float32)
    bar = side / 6
    return ((np.abs(yy - centre) <= bar) | (np.abs(xx - centre) <= bar)).astype(np.float32)


def moving_shapes(
    n: int, frames: int = 8, size: int = 32, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic videos ``(n, 1, frames, size, size)`` in [0, 1] and labels ``(n,)``: where the shape moves.

    Each clip shows one shape (square, disc or cross, 5-9 px) moving 1-2 px per frame in
    the direction ``MOTIONS[label]`` (right, left, down, up), plus light noise (std 0.05).
    Shape, size, speed and the mid-clip position have the same distribution for every
    direction, so the middle frames alone do not tell the classes apart: the motion
    across frames does (a Conv3d's job). Labels are balanced.
    """
    if size < 5 + (frames - 1):
        raise ValueError(f"moving_shapes: a {size} px frame is too small for {frames} frames")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(MOTIONS))
    videos = np.zeros((n, frames, size, size), np.float32)
    for i, label in enumerate(labels):
        side = min(int(rng.integers(5, 10)), size - (frames - 1))
        speed = int(rng.integers(1, 3))
        if side + speed * (frames - 1) > size:
            speed = 1
        travel = speed * (frames - 1)
        stamp = _shape_stamp(int(rng.integers(0, 3)), side)
        # Along the motion the mid-clip position is uniform over the range the motion allows;
        # across it, the same range, so the middle frames do not tell the axis of the motion.
        # (Frames near the start and the end do hint at it: a shape at the left edge of the
        # first frame cannot be moving left. A bounded frame cannot avoid that.)
        low = int(rng.integers(0, size - side - travel + 1))
        across = (
            int(rng.integers(0, size - side - travel + 1)) + (travel + int(rng.integers(0, 2))) // 2
        )
        for t in range(frames):
            along = (
                low + speed * t if MOTIONS[label] in ("right", "down") else low + travel - speed * t
            )
            y, x = (along, across) if MOTIONS[label] in ("down", "up") else (across, along)
            videos[i, t, y : y + side, x : x + side] = stamp
    videos += rng.normal(0, 0.05, videos.shape).astype(np.float32)
    return (
        torch.from_numpy(np.clip(videos, 0, 1)[:, None]),
        torch.from_numpy(labels.astype(np.int64)),
    )


# --------------------------------------------------------------------------- adding problem (TCN)


def adding_problem(n: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The adding problem (Bai, Kolter & Koltun 2018): inputs ``(n, 2, length)``, targets ``(n,)``.

    Channel 0 holds uniform [0, 1) values, channel 1 marks two of them with a 1: one in
    the first half of the sequence, one in the second. The target is their sum.
    """
    if length < 2:
        raise ValueError("adding_problem: the sequences need at least 2 steps")
    rng = np.random.default_rng(seed)
    values = rng.random((n, length)).astype(np.float32)
    half = length // 2
    first = rng.integers(0, half, n)
    second = rng.integers(half, length, n)
    markers = np.zeros((n, length), np.float32)
    rows = np.arange(n)
    markers[rows, first] = 1
    markers[rows, second] = 1
    targets = values[rows, first] + values[rows, second]
    inputs = np.stack([values, markers], axis=1)
    return torch.from_numpy(inputs), torch.from_numpy(targets.astype(np.float32))
