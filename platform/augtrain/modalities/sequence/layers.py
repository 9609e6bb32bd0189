"""Sequence layers: feature branches over (N, T, C) NaN-padded sequences and the classifier that joins them.
The builders in models.py assemble them; apart so that checking a spec's model imports no torch."""

from __future__ import annotations

import torch
from torch import nn

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


def _unpad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T, C) NaN-padded sequences -> zero-filled sequences and the (N, T) mask of real steps."""
    valid = ~torch.isnan(x[..., 0])
    return torch.nan_to_num(x, nan=0.0), valid


class RecurrentFeatures(nn.Module):
    """The last hidden state of a stacked LSTM or GRU (`cell`: "lstm", "gru") run over each sequence's own
    steps (packed).

    `shuffle` is LSTM-FCN's dimension shuffle: the channels become the steps and the whole time
    axis (zero-filled past a series' end) the features of each step, exactly the T steps the model
    was built for: a shorter series zero-filled to T as in training, a longer one cut to its first T.
    """

    def __init__(self, cell: str, shape: tuple[int, int], hidden: int, layers: int,
                 bidirectional: bool, dropout: float, shuffle: bool = False):
        super().__init__()
        self.rnn = CELLS[cell](shape[0] if shuffle else shape[1], hidden, layers, batch_first=True,
                               bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.size = hidden * (2 if bidirectional else 1)
        self.shuffle, self.steps = shuffle, shape[0]

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if self.shuffle:
            x = x[:, : self.steps]
            x = nn.functional.pad(x, (0, 0, 0, self.steps - x.shape[1])).transpose(1, 2)
            valid = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        lengths = valid.sum(1).clamp(min=1)
        if torch.compiler.is_exporting() and not self.rnn.bidirectional:
            # torch.export cannot trace packing; a one-way RNN's top-layer output at each series'
            # last step is the very state the packed run returns
            out, _ = self.rnn(x)
            return self.dropout(out[torch.arange(x.shape[0]), lengths - 1])
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        last = state[0] if isinstance(state, tuple) else state  # LSTM returns (h, c)
        return self.dropout(torch.cat([last[-1], last[-2]], 1) if self.rnn.bidirectional else last[-1])


class ConvFeatures(nn.Module):
    """FCN (Wang et al. 2017): conv blocks 128/256/128 (kernels 8/5/3) with batch norm, global average pooling.

    Padded steps are zeroed after every block and left out of the pooling, so extra padding
    does not change the output.
    """

    def __init__(self, channels: int, widths=(128, 256, 128), kernels=(8, 5, 3)):
        super().__init__()
        sizes = (channels, *widths)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.ConstantPad1d(((k - 1) // 2, k // 2), 0.0),  # "same" length, also for even kernels
                nn.Conv1d(sizes[i], sizes[i + 1], k),
                nn.BatchNorm1d(sizes[i + 1]),
                nn.ReLU(),
            )
            for i, k in enumerate(kernels)
        )
        self.size = widths[-1]

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        mask = valid[:, None, :].to(x.dtype)
        h = x.transpose(1, 2)
        for block in self.blocks:
            h = block(h) * mask
        return h.sum(2) / mask.sum(2).clamp(min=1)


class SequenceClassifier(nn.Module):
    """Feature branches side by side over the same sequences, concatenated, then one linear layer.

    Two classes get two logits under softmax cross-entropy, the same as one sigmoid unit on their difference.
    """

    def __init__(self, branches: list[nn.Module], classes: int):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.head = nn.Linear(sum(b.size for b in branches), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, valid = _unpad(x)
        return self.head(torch.cat([branch(x, valid) for branch in self.branches], 1))
