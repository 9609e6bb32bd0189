"""Audio models over (N, bins, frames) spectrograms, each sized from (bins, frames): a 2-D CNN, and the
sequence models (1-D convolutions, LSTM, GRU) run over the frames. The builders import torch when they build."""

from __future__ import annotations

from typing import TYPE_CHECKING

from augtrain.modalities.image.models import Dropout, Width
from augtrain.modalities.sequence.models import Hidden, Layers

if TYPE_CHECKING:
    from torch import nn


def audio_cnn(shape: tuple[int, int], classes: int, width: Width = 32, dropout: Dropout = 0.2) -> nn.Module:
    """Four blocks of 3x3 conv, batch norm, ReLU and 2x2 max pooling (32/64/128/128 channels at width 32; no
    pooling along an axis once it is 1), global average pooling, dropout, a linear layer."""
    from torch import nn

    size, layers, channels = list(shape), [nn.Unflatten(1, (1, shape[0]))], 1
    for out in (width, 2 * width, 4 * width, 4 * width):
        pool = tuple(2 if n >= 2 else 1 for n in size)
        layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(pool)]
        size, channels = [n // p for n, p in zip(size, pool)], out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, classes))


def _over_frames(branch: nn.Module, classes: int) -> nn.Module:
    """The sequence classifier with one `branch`, run over the spectrogram's frames."""
    from torch import nn

    from augtrain.modalities.audio.layers import Frames
    from augtrain.modalities.sequence.layers import SequenceClassifier

    return nn.Sequential(Frames(), SequenceClassifier([branch], classes))


def audio_conv1d(shape: tuple[int, int], classes: int) -> nn.Module:
    """The FCN of the sequence models (Wang et al. 2017) over frames, the bands as channels."""
    from augtrain.modalities.sequence.layers import ConvFeatures

    return _over_frames(ConvFeatures(shape[0]), classes)


def audio_lstm(shape: tuple[int, int], classes: int, hidden: Hidden = 128, layers: Layers = 2,
               bidirectional: bool = False, dropout: Dropout = 0.0) -> nn.Module:
    """Stacked LSTM over frames -> its last hidden state -> a linear layer."""
    from augtrain.modalities.sequence.layers import RecurrentFeatures

    return _over_frames(RecurrentFeatures("lstm", (shape[1], shape[0]), hidden, layers, bidirectional, dropout), classes)


def audio_gru(shape: tuple[int, int], classes: int, hidden: Hidden = 128, layers: Layers = 2,
              bidirectional: bool = False, dropout: Dropout = 0.0) -> nn.Module:
    """As `audio_lstm`, with GRU cells."""
    from augtrain.modalities.sequence.layers import RecurrentFeatures

    return _over_frames(RecurrentFeatures("gru", (shape[1], shape[0]), hidden, layers, bidirectional, dropout), classes)


MODELS = {"audio_cnn": audio_cnn, "audio_conv1d": audio_conv1d, "audio_lstm": audio_lstm, "audio_gru": audio_gru}
