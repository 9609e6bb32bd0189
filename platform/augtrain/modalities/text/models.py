"""Text models: (N, max_length) token ids (float32, 0 = padding) -> logits, through a learned embedding.
`shape` is (max_length, vocabulary size) of the dataset's tokenizer settings. The builders import their
layers (torch) when they build."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from augtrain.modalities.sequence.models import Dropout, Hidden, Layers

if TYPE_CHECKING:
    from torch import nn

Embedding = Annotated[int, Field(ge=1, le=1024)]
Maps = Annotated[int, Field(ge=1, le=4096)]
Widths = Annotated[list[Annotated[int, Field(ge=1, le=64)]], Field(min_length=1, max_length=8)]


def text_cnn(shape: tuple[int, int], classes: int, embedding: Embedding = 128, widths: Widths = (3, 4, 5),
             maps: Maps = 100, dropout: Dropout = 0.5) -> nn.Module:
    """Kim's sentence CNN: filter widths 3, 4, 5 with 100 maps each, max-over-time pooling, dropout 0.5."""
    from augtrain.modalities.text.layers import KimFeatures, TextClassifier

    return TextClassifier(shape, classes, embedding, KimFeatures(embedding, tuple(widths), maps), dropout)


def _recurrent(cell: str, shape: tuple[int, int], classes: int, embedding: int, hidden: int, layers: int,
               bidirectional: bool, dropout: float) -> nn.Module:
    from augtrain.modalities.sequence.layers import RecurrentFeatures
    from augtrain.modalities.text.layers import TextClassifier

    branch = RecurrentFeatures(cell, (shape[0], embedding), hidden, layers, bidirectional, dropout)
    return TextClassifier(shape, classes, embedding, branch, 0.0)


def text_lstm(shape: tuple[int, int], classes: int, embedding: Embedding = 128, hidden: Hidden = 128,
              layers: Layers = 2, bidirectional: bool = False, dropout: Dropout = 0.0) -> nn.Module:
    """An embedding, then `layers` LSTM layers of `hidden` units over each text's own tokens (packed)."""
    return _recurrent("lstm", shape, classes, embedding, hidden, layers, bidirectional, dropout)


def text_gru(shape: tuple[int, int], classes: int, embedding: Embedding = 128, hidden: Hidden = 128,
             layers: Layers = 2, bidirectional: bool = False, dropout: Dropout = 0.0) -> nn.Module:
    """As `text_lstm`, with GRU cells."""
    return _recurrent("gru", shape, classes, embedding, hidden, layers, bidirectional, dropout)


MODELS = {"text_cnn": text_cnn, "text_lstm": text_lstm, "text_gru": text_gru}
