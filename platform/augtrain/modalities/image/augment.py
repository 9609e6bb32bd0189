"""Image augmentation: albumentations transforms declared in YAML, validated before Ray starts."""

from __future__ import annotations

import inspect
import sys
from typing import Any

# albumentations' package imports two optional helpers and goes without them when their import fails: its
# PyTorch helpers (ToTensorV2: torch, over a second) and its Hugging Face Hub mixin (huggingface_hub and an
# HTTP client, about 0.2 s). augtrain uses neither: both are blocked while albumentations loads, so checking a
# job's transforms (and every data task that augments) pays for neither. Those blocked here are unblocked
# after, so `import albumentations.pytorch` or `huggingface_hub` still works for anyone.
_BLOCKED = [name for name in ("albumentations.pytorch", "huggingface_hub") if name not in sys.modules]
sys.modules.update(dict.fromkeys(_BLOCKED))
import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from augtrain.config.spec import problems  # noqa: E402

for _name in _BLOCKED:
    del sys.modules[_name]


def is_transform(name: str) -> bool:
    cls = getattr(A, name, None)
    return inspect.isclass(cls) and issubclass(cls, (A.ImageOnlyTransform, A.DualTransform))


def check_transform(name: str, params: dict[str, Any]) -> None:
    """Raise ValueError naming the problem if `name(**params)` is not a valid albumentations transform."""
    cls = getattr(A, name)
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


def build_pipeline(transforms: list[dict[str, Any]], seed: int | None = None) -> A.Compose:
    """A Compose from `[{name: ..., **params}]`; `seed=None` draws fresh entropy."""
    steps = [getattr(A, t["name"])(**{k: v for k, v in t.items() if k != "name"}) for t in transforms]
    return A.Compose(steps, seed=seed)


def augment_images(pipeline: A.Compose, images: np.ndarray) -> np.ndarray:
    """Apply the pipeline to each image of an (N, H, W, C) batch; shape and dtype are kept."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        out[i] = pipeline(image=image)["image"].reshape(image.shape)
    return out
