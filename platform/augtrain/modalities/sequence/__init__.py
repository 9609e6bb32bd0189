"""Sequences: (T, C) float32 series, NaN-padded at the end to the longest, from UCR/UEA files and
arrays; normalized by the data workers before augmentation (noise and warp sizes are in units of the
normalized signal); modelled by LSTM/GRU/FCN networks that pack or mask the padding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from augtrain.modalities.base import Modality, check_declared


class SequenceModality(Modality):
    kind = "sequence"
    model_names = ("lstm", "gru", "fcn", "lstm_fcn")
    fixed_shape = False  # the models take series of any length
    transforms_hint = "Jitter, Scaling, MagnitudeWarp, TimeWarp, WindowSlice, WindowWarp"
    thumbnail = (1.9, 0.8)

    def claims(self, data) -> bool:
        suffix = Path(data.source).suffix
        return data.source.startswith("ucr:") or suffix in {".ts", ".tsv"} or (
            suffix == ".npz" and data.kind == self.kind
        )

    def listing(self, data, labelled: bool = True, shape: list[int] | None = None):
        from augtrain.modalities.sequence.read import listing

        return listing(data)

    def describe(self, manifest: dict) -> str:
        lengths = manifest["lengths"]
        return f"lengths {lengths['min']}-{lengths['max']} x {manifest['channels']} channel(s)"

    def decode_input(self, value, data, shape: list[int]):
        from augtrain.modalities.sequence.read import read_sent

        return read_sent(value, shape)

    def owns_transform(self, name: str) -> bool:
        from augtrain.modalities.sequence.augment import TRANSFORMS

        return name in TRANSFORMS

    def check_transform(self, name: str, params: dict[str, Any]) -> None:
        from augtrain.modalities.sequence.augment import TRANSFORMS

        check_declared(TRANSFORMS[name], name, params)

    def augmenter(self, transforms: list[dict], seed: int | None = None):
        from augtrain.modalities.sequence.augment import SequencePipeline

        return SequencePipeline(transforms, seed)

    def models(self) -> dict:
        from augtrain.modalities.sequence.models import MODELS

        return MODELS

    def draw(self, axis, sample: np.ndarray, before: np.ndarray | None = None) -> None:
        # NaN padding ends a series: matplotlib leaves NaN points undrawn
        if before is not None:
            axis.plot(before, color="0.75", linewidth=0.8)
        axis.plot(sample, linewidth=0.9)

    def report_pair(self, samples: np.ndarray, stats: dict, transforms: list[dict], seed: int):
        # as in training: normalize, then augment, so noise and warps are in normalized units
        before = self.to_ship(samples, stats)
        return samples, self.augmenter(transforms, seed)(before) if transforms else None, before

    def plot_attributions(self, samples, attributions, titles, columns, stats):
        from augtrain.modalities.sequence.draw import plot_attributions

        return plot_attributions(samples, attributions, titles, columns)


SEQUENCE = SequenceModality()
