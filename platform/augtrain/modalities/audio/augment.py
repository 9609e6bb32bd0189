"""Audio augmentation, declared in YAML like albumentations: audiomentations' waveform transforms (gain,
noise at an SNR, time shift, stretch, pitch, filters) run on each recording, then its spectrogram masks
(SpecAugment's frequency and time masking) on the normalized spectrogram, where a masked value of 0 is
the train split's mean. Both in the Ray Data tasks, train split only, fresh every epoch."""

from __future__ import annotations

import random
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from augtrain.config.spec import problems

# audiomentations' transforms offered by name (those that read other files, or need optional
# dependencies, are left out: a job file must not make the data workers open arbitrary paths)
WAVEFORM = (
    "AddColorNoise", "AddGaussianNoise", "AddGaussianSNR", "AirAbsorption", "Aliasing", "BandPassFilter",
    "BandStopFilter", "BitCrush", "ClippingDistortion", "Gain", "GainTransition", "HighPassFilter",
    "HighShelfFilter", "LowPassFilter", "LowShelfFilter", "PeakingFilter", "PitchShift", "PolarityInversion",
    "RepeatPart", "Reverse", "SevenBandParametricEQ", "Shift", "TanhDistortion", "TimeMask", "TimeStretch",
)


class SpecMask(BaseModel):
    """SpecAugment masking (Park et al. 2019): `masks` runs of min_mask_fraction to max_mask_fraction of
    the bands or frames set to 0 (the train split's mean), each spectrogram with probability `p`.
    audiomentations 0.43's own SpecFrequencyMask cannot be imported (its base class is gone), hence these."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_mask_fraction: float = Field(0.0, ge=0, le=1)
    max_mask_fraction: float = Field(0.15, ge=0, le=1)
    masks: int = Field(1, ge=1, le=10)
    p: float = Field(0.5, ge=0, le=1)
    axis: ClassVar[int]

    @model_validator(mode="after")
    def _ordered(self) -> SpecMask:
        if self.min_mask_fraction > self.max_mask_fraction:
            raise ValueError("min_mask_fraction is above max_mask_fraction")
        return self

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        size = x.shape[self.axis]
        low, high = round(self.min_mask_fraction * size), round(self.max_mask_fraction * size)
        out = x.copy()
        for i in np.flatnonzero(rng.random(len(x)) < self.p):
            for _ in range(self.masks):
                width = int(rng.integers(low, high + 1))
                start = int(rng.integers(0, size - width + 1))
                (out[i, start : start + width] if self.axis == 1 else out[i, :, start : start + width]).fill(0.0)
        return out


class SpecFrequencyMask(SpecMask):
    axis: ClassVar[int] = 1


class SpecTimeMask(SpecMask):
    axis: ClassVar[int] = 2


SPECTRAL = {"SpecFrequencyMask": SpecFrequencyMask, "SpecTimeMask": SpecTimeMask}
TRANSFORMS = WAVEFORM + tuple(SPECTRAL)


def build_transform(spec: dict):
    """A transform from `{name: ..., **params}` (audiomentations' or a mask); ValueError naming what is wrong."""
    import audiomentations

    name, params = spec["name"], {k: v for k, v in spec.items() if k != "name"}
    try:
        return SPECTRAL[name](**params) if name in SPECTRAL else getattr(audiomentations, name)(**params)
    except ValidationError as exc:
        raise ValueError(f"{name}: {problems(exc)}") from None
    except (TypeError, ValueError, AssertionError) as exc:
        raise ValueError(f"{name}: {exc or type(exc).__name__}") from None


class AudioAugmenter:
    """A job's audio transforms: `waveforms` on decoded recordings, `spectrograms` on normalized spectrograms.

    audiomentations draws from Python's and NumPy's global generators: a `seed` seeds them and the masks'
    generator (the report's fixed examples); `None` leaves fresh entropy.
    """

    def __init__(self, transforms: list[dict], rate: int, seed: int | None = None):
        from audiomentations import Compose

        if seed is not None:
            random.seed(seed)
            np.random.seed(seed)
        self.rate, self.rng = rate, np.random.default_rng(seed)
        waves = [build_transform(t) for t in transforms if t["name"] in WAVEFORM]
        self.waves = Compose(waves, p=1.0) if waves else None
        self.masks = [build_transform(t) for t in transforms if t["name"] in SPECTRAL]

    def waveforms(self, samples: np.ndarray) -> np.ndarray:
        """(N, length, 1) waveforms, each augmented and kept at its length."""
        if self.waves is None:
            return samples
        from augtrain.modalities.audio.read import fit

        out = np.empty_like(samples)
        for i, wave in enumerate(samples[..., 0]):
            out[i, :, 0] = fit(self.waves(samples=wave, sample_rate=self.rate), len(wave))
        return out

    def spectrograms(self, x: np.ndarray) -> np.ndarray:
        """(N, bins, frames) spectrograms, each masked."""
        for mask in self.masks:
            x = mask(x, self.rng)
        return x
