"""Sequence models: (N, T, C) inputs with NaN padding after each series' end, sized from (T, C).

The builders import their layers (layers.py, torch) when they build: checking a spec's model and its
parameters needs only the signatures below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field

if TYPE_CHECKING:
    from torch import nn

# Bounds on what a spec (or a bundle from elsewhere) may ask for: the model is built before its
# weights are compared with a bundle's, and 20,000 LSTM layers take minutes to build.
Hidden = Annotated[int, Field(ge=1, le=4096)]
Layers = Annotated[int, Field(ge=1, le=16)]
Dropout = Annotated[float, Field(ge=0, lt=1)]


def lstm(shape: tuple[int, int], classes: int, hidden: Hidden = 128, layers: Layers = 2, bidirectional: bool = False,
         dropout: Dropout = 0.0) -> nn.Module:
    """The classic stack: `layers` LSTM layers of `hidden` units -> Dense; `shape` is (T, C)."""
    from augtrain.modalities.sequence.layers import (
        RecurrentFeatures,
        SequenceClassifier,
    )

    return SequenceClassifier([RecurrentFeatures("lstm", shape, hidden, layers, bidirectional, dropout)], classes)


def gru(shape: tuple[int, int], classes: int, hidden: Hidden = 128, layers: Layers = 2, bidirectional: bool = False,
        dropout: Dropout = 0.0) -> nn.Module:
    """As `lstm`, with GRU cells."""
    from augtrain.modalities.sequence.layers import (
        RecurrentFeatures,
        SequenceClassifier,
    )

    return SequenceClassifier([RecurrentFeatures("gru", shape, hidden, layers, bidirectional, dropout)], classes)


def fcn(shape: tuple[int, int], classes: int) -> nn.Module:
    """The 1-D fully convolutional network of Wang et al. 2017."""
    from augtrain.modalities.sequence.layers import ConvFeatures, SequenceClassifier

    return SequenceClassifier([ConvFeatures(shape[1])], classes)


def lstm_fcn(shape: tuple[int, int], classes: int, hidden: Hidden = 128, dropout: Dropout = 0.8,
             bidirectional: bool = False, shuffle: bool = True) -> nn.Module:
    """LSTM-FCN (Karim et al. 2017): an LSTM branch (dropout 0.8, dimension shuffle) beside the FCN branch."""
    from augtrain.modalities.sequence.layers import (
        ConvFeatures,
        RecurrentFeatures,
        SequenceClassifier,
    )

    recurrent = RecurrentFeatures("lstm", shape, hidden, 1, bidirectional, dropout, shuffle)
    return SequenceClassifier([recurrent, ConvFeatures(shape[1])], classes)


MODELS = {"lstm": lstm, "gru": gru, "fcn": fcn, "lstm_fcn": lstm_fcn}
