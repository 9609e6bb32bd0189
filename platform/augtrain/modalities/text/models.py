"""Text models: (N, max_length) token ids (float32, 0 = padding) -> logits, through a learned embedding.
`shape` is (max_length, vocabulary size) of the dataset's tokenizer settings."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from augtrain.modalities.sequence.models import (
    Dropout,
    Hidden,
    Layers,
    RecurrentFeatures,
)

Embedding = Annotated[int, Field(ge=1, le=1024)]
Maps = Annotated[int, Field(ge=1, le=4096)]
Widths = Annotated[list[Annotated[int, Field(ge=1, le=64)]], Field(min_length=1, max_length=8)]


class TextClassifier(nn.Module):
    """Token ids -> embedding (id 0 embeds as zeros) -> a feature branch over the real tokens -> one linear layer."""

    def __init__(self, shape: tuple[int, int], classes: int, embedding: int, branch: nn.Module, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(shape[1], embedding, padding_idx=0)
        with torch.no_grad():  # Kim 2014's random vectors: U(-0.25, 0.25), not N(0, 1); padding stays zero
            self.embedding.weight.uniform_(-0.25, 0.25)
            self.embedding.weight[0] = 0
        self.branch = branch
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(branch.size, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x.long()
        valid = ids != 0
        valid[:, 0] = True  # an empty text (all padding) still has one step
        return self.head(self.dropout(self.branch(self.embedding(ids), valid)))


class KimFeatures(nn.Module):
    """Kim 2014: convolutions of several widths over the embedded words, each max-pooled over time
    (padding left out), concatenated."""

    def __init__(self, embedding: int, widths: tuple[int, ...], maps: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(embedding, maps, width, padding=width - 1) for width in widths)
        self.size = maps * len(widths)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)
        pooled = []
        for conv in self.convs:
            # a window of width w ending at step t covers steps t-w+1..t: it counts where step t is real
            out = torch.relu(conv(h))[:, :, : x.shape[1]]
            pooled.append(out.masked_fill(~valid[:, None, :], float("-inf")).amax(2))
        return torch.cat(pooled, 1)


def text_cnn(shape: tuple[int, int], classes: int, embedding: Embedding = 128, widths: Widths = (3, 4, 5),
             maps: Maps = 100, dropout: Dropout = 0.5) -> nn.Module:
    """Kim's sentence CNN: filter widths 3, 4, 5 with 100 maps each, max-over-time pooling, dropout 0.5."""
    return TextClassifier(shape, classes, embedding, KimFeatures(embedding, tuple(widths), maps), dropout)


def text_lstm(shape: tuple[int, int], classes: int, embedding: Embedding = 128, hidden: Hidden = 128,
              layers: Layers = 2, bidirectional: bool = False, dropout: Dropout = 0.0) -> nn.Module:
    """An embedding, then `layers` LSTM layers of `hidden` units over each text's own tokens (packed)."""
    branch = RecurrentFeatures(nn.LSTM, (shape[0], embedding), hidden, layers, bidirectional, dropout)
    return TextClassifier(shape, classes, embedding, branch, 0.0)


def text_gru(shape: tuple[int, int], classes: int, embedding: Embedding = 128, hidden: Hidden = 128,
             layers: Layers = 2, bidirectional: bool = False, dropout: Dropout = 0.0) -> nn.Module:
    """As `text_lstm`, with GRU cells."""
    branch = RecurrentFeatures(nn.GRU, (shape[0], embedding), hidden, layers, bidirectional, dropout)
    return TextClassifier(shape, classes, embedding, branch, 0.0)


MODELS = {"text_cnn": text_cnn, "text_lstm": text_lstm, "text_gru": text_gru}
