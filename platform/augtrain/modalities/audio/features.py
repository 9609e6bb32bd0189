"""Spectrograms: how an audio model sees a batch of waveforms (log-mel bands, or their MFCCs), computed
by librosa in the data workers, where the waveform augmentation has just run."""

from __future__ import annotations

import numpy as np

from augtrain.config.spec import Spectrogram


def spectrogram(waves: np.ndarray, rate: int, spec: Spectrogram) -> np.ndarray:
    """(N, length, 1) waveforms -> (N, bins, frames) float32: log-mel power in dB, or its MFCCs."""
    import librosa

    y = np.ascontiguousarray(waves[..., 0], dtype=np.float32)
    power = librosa.feature.melspectrogram(y=y, sr=rate, n_fft=spec.n_fft, hop_length=spec.hop_length,
                                           n_mels=spec.n_mels, fmin=spec.f_min, fmax=spec.f_max)
    decibels = 10 * np.log10(np.maximum(power, 1e-10))  # no top_db: a clip's floor must not depend on its batch
    if spec.features == "mfcc":
        return librosa.feature.mfcc(S=decibels, n_mfcc=spec.n_mfcc).astype(np.float32)
    return decibels.astype(np.float32)


def bins_and_frames(length: int, spec: Spectrogram) -> tuple[int, int]:
    """The (bins, frames) of a waveform of `length` samples (librosa centres frames: one every hop)."""
    return (spec.n_mfcc if spec.features == "mfcc" else spec.n_mels), 1 + length // spec.hop_length
