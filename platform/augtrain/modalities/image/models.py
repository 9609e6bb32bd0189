"""Image models: (N, C, H, W) inputs, each sized from the dataset's sample shape (H, W, C)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from torch import nn

Width = Annotated[int, Field(ge=1, le=1024)]  # a bound on what a spec (or a bundle from elsewhere) may build
Dropout = Annotated[float, Field(ge=0, lt=1)]

def cnn(shape: tuple[int, int, int], classes: int, width: Width = 32, dropout: Dropout = 0.0) -> nn.Module:
    """The classic small CNN: Conv 32 -> Pool -> Conv 64 -> Pool -> Conv 64 -> Dense 64 -> Dense classes.

    Convolutions pad to keep size so the net fits inputs as small as 8x8; `shape` is (H, W, C).
    """
    height, width_px, channels = shape
    features = nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1),
        nn.ReLU(),
    )
    flat = 2 * width * (height // 4) * (width_px // 4)
    return nn.Sequential(
        features,
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(flat, 64),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(64, classes),
    )


MODELS = {"cnn": cnn}
