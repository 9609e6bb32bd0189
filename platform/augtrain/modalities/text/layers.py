"""Text layers: the embedding-then-branch classifier and Kim's convolutions; models.py builds from them
(apart so that checking a spec's model imports no torch)."""

from __future__ import annotations

import torch
from torch import nn


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
