"""Recordings the tests generate: three classes of synthetic calls (a rising chirp, a falling chirp, a
buzzing harmonic tone), each recording with its own pitch, length, loudness, noise, sample rate and
format, so a model has to learn the shape of the sound rather than one file's bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ("up", "down", "buzz")
RATES = (8000, 16000, 22050)
FORMATS = ("WAV", "FLAC", "OGG", "MP3")


def call(kind: str, rate: int, rng: np.random.Generator) -> np.ndarray:
    """One call of `kind` in 0.3-0.7 s, inside 0.1-0.3 s of noise on each side."""
    seconds = rng.uniform(0.3, 0.7)
    t = np.arange(int(seconds * rate)) / rate
    low, high = rng.uniform(250, 400), rng.uniform(1000, 1600)
    if kind == "buzz":
        f0 = rng.uniform(140, 260)
        wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3)) * (1 + 0.5 * np.sin(2 * np.pi * 6 * t))
    else:
        start, end = (low, high) if kind == "up" else (high, low)
        wave = np.sin(2 * np.pi * (start * t + (end - start) * t**2 / (2 * seconds)))
    wave = wave * np.hanning(len(t)) * rng.uniform(0.2, 0.9) / max(np.abs(wave).max(), 1e-8)
    pad = [np.zeros(int(rng.uniform(0.1, 0.3) * rate)) for _ in range(2)]
    wave = np.concatenate([pad[0], wave, pad[1]])
    return (wave + rng.normal(0, rng.uniform(0.002, 0.02), len(wave))).clip(-1, 1)


def write_recordings(root: Path, per_class: int, seed: int = 0, split_folders: bool = False) -> list[Path]:
    """`per_class` recordings of each class in root/<class>/ (or root/train|test/<class>/), formats and rates
    cycling, some in stereo; the files written."""
    import soundfile

    rng = np.random.default_rng(seed)
    written = []
    for kind in CLASSES:
        for i in range(per_class):
            rate, fmt = RATES[i % len(RATES)], FORMATS[i % len(FORMATS)]
            wave = call(kind, rate, rng)
            if i % 4 == 3:  # stereo: the same call, the second channel quieter
                wave = np.stack([wave, 0.5 * wave], 1)
            split = ("test" if i % 5 == 4 else "train") if split_folders else ""
            path = root / split / kind / f"{kind}{i}.{fmt.lower()}"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, wave, rate, format=fmt)
            written.append(path)
    return written
