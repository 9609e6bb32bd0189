"""Augment: pipelines declared in YAML (albumentations for images, NumPy for sequences), validated before Ray starts."""

from __future__ import annotations

import inspect
from typing import Any

import albumentations as A
import numpy as np
from pydantic import ValidationError

from augtrain.sequence_augment import TRANSFORMS as SEQUENCE_TRANSFORMS
from augtrain.sequence_augment import SequencePipeline


def transform_kind(name: str) -> str:
    """'sequence' for augtrain's sequence transforms, 'image' for albumentations ones."""
    return "sequence" if name in SEQUENCE_TRANSFORMS else "image"


def problems(error: ValidationError) -> str:
    """A pydantic error as one line: `field: message; field: message`."""
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())


def check_transform(name: str, params: dict[str, Any]) -> None:
    """Raise ValueError naming the problem if `name(**params)` is not a valid transform."""
    if name in SEQUENCE_TRANSFORMS:
        try:
            SEQUENCE_TRANSFORMS[name](**params)
        except ValidationError as exc:
            raise ValueError(f"{name}: {problems(exc)}") from None
        return
    cls = getattr(A, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, (A.ImageOnlyTransform, A.DualTransform))):
        raise ValueError(
            f"unknown transform {name!r} (expected an albumentations image transform, e.g. Affine, "
            f"or a sequence transform: {', '.join(SEQUENCE_TRANSFORMS)})"
        )
    accepted = inspect.signature(cls).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        raise ValueError(f"{name}: unknown parameter(s) {unknown}")
    try:
        cls(**params)
    except ValueError as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, ValidationError) else exc
        if isinstance(cause, ValidationError):
            raise ValueError(f"{name}: {problems(cause)}") from None
        raise ValueError(f"{name}: {exc}") from None
    except TypeError as exc:
        raise ValueError(f"{name}: {exc}") from None


def build_pipeline(transforms: list[dict[str, Any]], seed: int | None = None) -> A.Compose | SequencePipeline:
    """A pipeline from `[{name: ..., **params}]` (all image or all sequence); `seed=None` draws fresh entropy."""
    if transforms and transform_kind(transforms[0]["name"]) == "sequence":
        return SequencePipeline(transforms, seed)
    steps = [getattr(A, t["name"])(**{k: v for k, v in t.items() if k != "name"}) for t in transforms]
    return A.Compose(steps, seed=seed)


def augment_images(pipeline: A.Compose, images: np.ndarray) -> np.ndarray:
    """Apply the pipeline to each image of an (N, H, W, C) batch; shape and dtype are kept."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        out[i] = pipeline(image=image)["image"].reshape(image.shape)
    return out
