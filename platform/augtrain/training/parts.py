"""A model's parts as training treats them: the head (its last linear layer, which starts fresh when the
class count changes and trains alone while the backbone is frozen) and the backbone (all the rest), each
split into weights that decay and those that never do (biases and normalization layers)."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn


def head_name(model: nn.Module) -> str:
    """The module name of the model's classification head: its last nn.Linear."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no linear layer to serve as its head")
    return names[-1]


def head_tensors(model: nn.Module) -> set[str]:
    """The state dict names of the head's tensors."""
    prefix = head_name(model) + "."
    return {name for name in model.state_dict() if name.startswith(prefix)}


def head_constraint(model: nn.Module, max_norm: float | None) -> Callable[[], None]:
    """What follows every optimizer step: the head's weight rows (one per class) rescaled to an L2 norm of at
    most `max_norm`, as Kim 2014 constrained the softmax layer; nothing without one."""
    if max_norm is None:
        return lambda: None
    weight = model.get_submodule(head_name(model)).weight

    def constrain() -> None:
        with torch.no_grad():
            weight.copy_(torch.renorm(weight, 2, 0, max_norm))

    return constrain


def param_groups(model: nn.Module, weight_decay: float, backbone_lr: float) -> list[dict]:
    """Optimizer groups of the (unwrapped) model: the head first (its lr is the one reported), then the
    backbone; each part's one-dimensional tensors (biases, norm scales) without weight decay. `lr_scale`
    and `part` ride along in each group for the schedule."""
    head = head_name(model) + "."
    groups: dict[tuple[str, bool], list] = {}
    for name, param in model.named_parameters():
        part = "head" if name.startswith(head) else "backbone"
        groups.setdefault((part, param.ndim > 1), []).append(param)
    return [
        {"params": params, "part": part, "weight_decay": weight_decay if decays else 0.0,
         "lr_scale": 1.0 if part == "head" else backbone_lr}
        for (part, decays), params in sorted(groups.items(), key=lambda item: item[0][0] != "head")
    ]


def lr_factors(groups: list[dict], schedule: Callable[[int], float], freeze_epochs: int) -> list[Callable[[int], float]]:
    """Per group, the factor of its initial lr at each epoch: the schedule's, times the group's lr_scale;
    zero for the backbone in its first `freeze_epochs` epochs."""

    def factor(group: dict) -> Callable[[int], float]:
        frozen = freeze_epochs if group["part"] == "backbone" else 0
        return lambda epoch: 0.0 if epoch < frozen else group["lr_scale"] * schedule(epoch)

    return [factor(group) for group in groups]


def schedule_factor(name: str, epochs: int, step_size: int, gamma: float) -> Callable[[int], float]:
    """The lr schedule as a factor of epoch: cosine annealing to zero over `epochs`, a step decay, or constant."""
    if name == "cosine":
        return lambda epoch: 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    if name == "step":
        return lambda epoch: gamma ** (epoch // step_size)
    return lambda epoch: 1.0
