"""Audio: recordings decoded to (length, 1) float32 mono waveforms at one sample rate, augmented as
waveforms (audiomentations), turned into log-mel spectrograms (or MFCCs) and normalized by the data
workers, masked (SpecAugment), and modelled as (N, bins, frames) by a CNN or by sequence models over
frames. A collected dataset records its sample rate and spectrogram settings; the modality is bound to
them (`bind`) wherever its samples become model input, a bundle included."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from augtrain.datasets.normalize import normalize
from augtrain.modalities.base import Modality

if TYPE_CHECKING:
    from augtrain.config.spec import Spectrogram


class AudioModality(Modality):
    kind = "audio"
    plural = "recordings"
    model_names = ("audio_cnn", "audio_conv1d", "audio_lstm", "audio_gru")
    transforms_hint = ("audiomentations waveform transforms (e.g. Gain, AddGaussianSNR, Shift), SpecFrequencyMask, "
                       "SpecTimeMask")
    thumbnail = (1.6, 1.3)

    def __init__(self, rate: int | None = None, spectrogram: Spectrogram | None = None):
        self.rate, self.spectrogram = rate, spectrogram  # None until bound to a dataset

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and (other.rate, other.spectrogram) == (self.rate, self.spectrogram)

    def __hash__(self) -> int:
        return hash((type(self).__qualname__, self.rate, self.spectrogram))

    def claims(self, data) -> bool:
        from augtrain.datasets.files import first_suffix, is_folder
        from augtrain.modalities.audio.read import SUFFIXES

        if data.kind == self.kind:
            return Path(data.source).suffix in {".csv", ".parquet"} or is_folder(data.source)
        return data.kind is None and first_suffix(data.source) in SUFFIXES

    def listing(self, data, labelled: bool = True, shape: list[int] | None = None):
        from augtrain.modalities.audio.read import listing

        if shape is None:  # collect: the job's settings
            length = round(data.duration * data.sample_rate) if data.duration else None
            return listing(data, labelled, data.sample_rate, length, data.spectrogram)
        return listing(data, labelled, self._bound().rate, shape[0], self._bound().spectrogram)  # a model's

    def bind(self, fields: dict) -> AudioModality:
        from pydantic import ValidationError

        from augtrain.config.spec import Spectrogram, problems

        rate, spectrogram = fields.get("sample_rate"), fields.get("spectrogram")
        if type(rate) is not int or not 1000 <= rate <= 192_000:
            raise ValueError("sample_rate must be a whole number of Hz from 1000 to 192000")
        if not isinstance(spectrogram, dict):
            raise ValueError("spectrogram must be an object of settings")
        try:
            return AudioModality(rate, Spectrogram.model_validate(spectrogram))
        except ValidationError as exc:
            raise ValueError(f"spectrogram: {problems(exc)}") from None

    def binding(self, manifest: dict) -> dict:
        return {"sample_rate": manifest["sample_rate"], "spectrogram": manifest["spectrogram"]}

    def _bound(self) -> AudioModality:
        if self.rate is None:
            raise ValueError("audio samples become model input only with a dataset's settings (Modality.bind)")
        return self

    def describe(self, manifest: dict) -> str:
        spectrogram = manifest["spectrogram"]
        return (f"{manifest['duration']:g} s at {manifest['sample_rate']} Hz -> {spectrogram['features']} "
                f"{spectrogram['n_mfcc'] if spectrogram['features'] == 'mfcc' else spectrogram['n_mels']} bands")

    # --- augment and normalize: waveform transforms, spectrogram, normalize, spectrogram masks ---
    def features(self, waves: np.ndarray) -> np.ndarray:
        from augtrain.modalities.audio.features import spectrogram

        return spectrogram(waves, self._bound().rate, self.spectrogram)

    def stat_values(self, samples: np.ndarray) -> np.ndarray:
        return self.features(samples)[..., None]  # one mean and std over every band and frame

    def to_ship(self, samples: np.ndarray, stats: dict) -> np.ndarray:
        return normalize(self.features(samples), stats)

    def ship(self, samples: np.ndarray, stats: dict, augment: Callable | None = None) -> np.ndarray:
        if augment is None:
            return self.to_ship(samples, stats)
        return augment.spectrograms(self.to_ship(augment.waveforms(samples), stats))

    def owns_transform(self, name: str) -> bool:
        from augtrain.modalities.audio.augment import TRANSFORMS

        return name in TRANSFORMS

    def check_transform(self, name: str, params: dict[str, Any]) -> None:
        from augtrain.modalities.audio.augment import build_transform

        build_transform({"name": name, **params})

    def augmenter(self, transforms: list[dict], seed: int | None = None):
        from augtrain.modalities.audio.augment import AudioAugmenter

        return AudioAugmenter(transforms, self._bound().rate, seed)

    # --- models ---
    def models(self) -> dict:
        from augtrain.modalities.audio.models import MODELS

        return MODELS

    def build_model(self, name: str, params: dict[str, Any], shape, classes: int):
        from augtrain.modalities.audio.features import bins_and_frames

        return self.models()[name](bins_and_frames(shape[0], self._bound().spectrogram), classes, **params)

    # --- report and explain ---
    def draw(self, axis, sample: np.ndarray, before: np.ndarray | None = None) -> None:
        from augtrain.modalities.audio.draw import show_recording

        show_recording(axis, sample[:, 0], self.features(sample[None])[0])

    def report_pair(self, samples: np.ndarray, stats: dict, transforms: list[dict], seed: int):
        # waveforms, as augmented in training before their spectrogram (its masks are not drawn)
        return samples, self.augmenter(transforms, seed).waveforms(samples) if transforms else None, None

    def plot_attributions(self, samples, attributions, titles, columns, stats):
        from augtrain.modalities.audio.draw import plot_attributions

        return plot_attributions(samples, attributions, titles, columns)


AUDIO = AudioModality()
