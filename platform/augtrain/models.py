"""Models: a small explicit registry of builders, each sized from the dataset's sample shape."""

from __future__ import annotations

import inspect
import typing
from typing import Any

from pydantic import TypeAdapter, ValidationError
from torch import nn


def cnn(shape: tuple[int, int, int], classes: int, width: int = 32, dropout: float = 0.0) -> nn.Module:
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


def check_model(name: str, params: dict[str, Any]) -> None:
    """Raise ValueError if `name` is not registered or `params` are not among its arguments."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})")
    hints = typing.get_type_hints(MODELS[name])
    accepted = set(inspect.signature(MODELS[name]).parameters) - {"shape", "classes"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ValueError(f"model {name!r} has no parameter(s) {unknown} (accepts: {', '.join(sorted(accepted))})")
    for key, value in params.items():
        try:
            TypeAdapter(hints[key]).validate_python(value, strict=True)
        except ValidationError:
            raise ValueError(f"model {name!r}: {key} must be {hints[key].__name__}, got {value!r}") from None


def build_model(name: str, params: dict[str, Any], shape: tuple[int, ...], classes: int) -> nn.Module:
    """The registered model `name`, built for samples of `shape` and `classes` outputs."""
    return MODELS[name](tuple(shape), classes, **params)
