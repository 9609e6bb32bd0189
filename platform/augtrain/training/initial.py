"""The weights a run starts from, put together on the driver and checked against the model before any worker
starts: a state dict file (`model.weights`), another run's bundle (`model.init_from`), word vectors
(`model.vectors`, the modality's). Each file is hostile: safetensors or torch's weights-only loader, bounded
in size. The head (training/parts.py) starts fresh where its shape differs (another class count); any other
tensor that does not fit the model is an error naming it."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import ray
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from torch import nn

from augtrain.config.spec import Job
from augtrain.datasets.files import read_bytes
from augtrain.datasets.stream import CollectedData
from augtrain.errors import BadInput, clip
from augtrain.training.parts import head_tensors

MAX_WEIGHTS_BYTES = 8 << 30
SHOWN = 4  # tensor names an error lists


class WeightsError(BadInput):
    """Starting weights that cannot be read or do not fit the model."""


def starting_weights(job: Job, data: CollectedData, echo: Callable[[str], None]) -> dict[str, np.ndarray] | None:
    """{tensor name: array} the run's model loads before training (with strict=False: what is not named
    keeps its fresh initialisation), or None when the spec names no starting weights."""
    spec = job.model
    if not (spec.weights or spec.init_from or spec.vectors):
        return None
    manifest = data.manifest
    model = data.modality.build_model(spec.name, spec.params, manifest["shape"], len(manifest["classes"]))
    state: dict[str, torch.Tensor] = {}
    if spec.weights:
        state.update(fitted(read_state_dict(spec.weights), model, "model.weights", echo))
    if spec.init_from:
        state.update(fitted(bundle_state(spec.init_from, data, model, echo), model, "model.init_from", echo))
    if spec.vectors:
        try:
            state.update(data.modality.word_vectors(spec.vectors, data.stats, model, echo))
        except (ValueError, OSError) as exc:
            raise WeightsError(f"model.vectors: {clip(exc)}") from None
    # as NumPy arrays (read in place from the object store); NumPy has no bfloat16, the model casts on loading
    return {name: (t.float() if t.dtype == torch.bfloat16 else t).detach().cpu().numpy() for name, t in state.items()}


def shared_starting_weights(job: Job, data: CollectedData, echo: Callable[[str], None]) -> ray.ObjectRef | None:
    """`starting_weights` put in the object store once, for every worker of every run (fold, trial) to read."""
    state = starting_weights(job, data, echo)
    return None if state is None else ray.put(state)


def read_state_dict(location: str) -> dict[str, torch.Tensor]:
    """A flat {name: tensor} from a .safetensors file or a torch file, never unpickling code."""
    try:
        blob = read_bytes(location, MAX_WEIGHTS_BYTES)
    except OSError as exc:
        raise WeightsError(f"model.weights: {location}: {clip(exc, 200)}") from None
    try:
        if Path(location).suffix == ".safetensors":
            state = load_tensors(blob)
        else:
            state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except (SafetensorError, pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError) as exc:
        raise WeightsError(f"model.weights: {location}: not a safetensors or torch weights file: {clip(exc, 200)}") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise WeightsError(f"model.weights: {location}: not a state dict (a mapping of tensor names to tensors)")
    return state


def bundle_state(location: str, data: CollectedData, model: nn.Module, echo: Callable[[str], None]) -> dict[str, torch.Tensor]:
    """Another run's weights, its bundle checked whole (hashes, values, weights against its spec), carried
    over to this run's inputs by the modality (a text model's embedding rows follow their tokens); without
    its head where its classes are others, even as many."""
    from augtrain.artifacts.bundle import load_bundle
    from augtrain.artifacts.signing import BundleError

    try:
        bundle = load_bundle(location)
    except BundleError as exc:
        raise WeightsError(f"model.init_from: {clip(exc)}") from None
    if type(bundle.modality) is not type(data.modality):
        raise WeightsError(f"model.init_from: {location}: a model of {bundle.modality.samples_name}, "
                           f"this run trains on {data.modality.samples_name}")
    state = data.modality.carry_over(bundle.model.state_dict(), bundle.stats, data.stats, model)
    if bundle.classes != data.manifest["classes"]:
        echo(f"model.init_from: the head starts fresh: its classes ({clip(', '.join(bundle.classes), 80)}) are not "
             "this run's")
        state = {name: tensor for name, tensor in state.items() if name not in head_tensors(model)}
    return state


def fitted(state: dict[str, torch.Tensor], model: nn.Module, field: str, echo: Callable[[str], None]) -> dict[str, torch.Tensor]:
    """`state` without a head that does not fit (it starts fresh: said so), after checking that every other
    tensor of the model is there with its shape and nothing else is."""
    wanted = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    head = head_tensors(model)
    differ = [name for name in wanted.keys() & state.keys() if tuple(state[name].shape) != wanted[name]]
    if any(name in head for name in differ):
        shapes = ", ".join(f"{name} {tuple(state[name].shape)} -> {wanted[name]}" for name in sorted(head & state.keys()))
        echo(f"{field}: the head starts fresh ({shapes})")
        state = {name: tensor for name, tensor in state.items() if name not in head}
    problems = sorted(
        [f"{name} is {tuple(state[name].shape)}, the model's {wanted[name]}" for name in differ if name not in head]
        + [f"{name} missing" for name in wanted.keys() - state.keys() - head]
        + [f"{name} not in the model" for name in state.keys() - wanted.keys()]
    )
    if problems:
        more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
        raise WeightsError(f"{field}: the weights do not fit the model {model.__class__.__name__}: "
                           f"{'; '.join(problems[:SHOWN])}{more}")
    return state
