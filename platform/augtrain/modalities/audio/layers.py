"""Audio layers: a spectrogram read as a sequence of frames (apart from models.py so that checking a spec's
model imports no torch)."""

from __future__ import annotations

from torch import nn


class Frames(nn.Module):
    """(N, bins, frames) -> (N, frames, bins): a spectrogram as a sequence of frames."""

    def forward(self, x):
        return x.transpose(1, 2)
