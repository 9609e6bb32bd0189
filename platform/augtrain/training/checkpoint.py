"""Checkpoints of the train loop: the file names, and every read and write of weights and train state.

Weights are safetensors (nothing to unpickle); the train state (optimizer, schedule, progress) is
torch.save'd plain tensors and numbers, read back with weights_only=True.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS = "model.safetensors"
STATE = "train_state.pt"


def save_weights(model: nn.Module, folder: str | Path) -> None:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(Path(folder) / WEIGHTS))


def load_weights(model: nn.Module, folder: str | Path) -> nn.Module:
    """Load the weights saved in `folder` into an (unwrapped) model."""
    model.load_state_dict(load_file(str(Path(folder) / WEIGHTS)))
    return model


def save_state(folder: str | Path, state: dict) -> None:
    torch.save(state, Path(folder) / STATE)


def load_state(folder: str | Path) -> dict:
    return torch.load(Path(folder) / STATE, weights_only=True)


def read_history(folder: str | Path) -> list[dict]:
    """Every epoch's metrics up to this checkpoint."""
    return load_state(folder)["history"]
