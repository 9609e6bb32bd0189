"""Images: (H, W, C) uint8 (or float32 from tables and arrays), augmented with albumentations, modelled
by CNNs on (N, C, H, W). They travel as stored and the trainer's collate normalizes them: uint8 is a
quarter of float32's bytes through the object store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from augtrain.modalities.base import Modality


class ImageModality(Modality):
    kind = "image"
    model_names = (
        "cnn", "resnet_small", "resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large",
        "efficientnet_b0", "convnext_tiny",
    )
    normalized_by_consumer = True
    transforms_hint = "albumentations image transforms, e.g. Affine"
    thumbnail = (0.75, 0.75)  # inches per sample in the report's grids

    def __init__(self, resized: bool = False):
        self.resized = resized  # bound to a dataset whose images were resized: a model's inputs are too

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.resized == self.resized

    def __hash__(self) -> int:
        return hash((type(self).__qualname__, self.resized))

    def claims(self, data) -> bool:
        from augtrain.datasets.files import is_folder

        suffix = Path(data.source).suffix
        return data.source == "sklearn-digits" or suffix in {".csv", ".parquet"} or (
            suffix == ".npz" and data.kind in (None, self.kind)
        ) or (suffix not in {".ts", ".tsv"} and is_folder(data.source))

    def listing(self, data, labelled: bool = True, shape: list[int] | None = None):
        from augtrain.modalities.image.read import listing

        return listing(data, labelled, shape, self.resized)

    def bind(self, fields: dict) -> ImageModality:
        resized = fields.get("resized", False)
        if type(resized) is not bool:
            raise ValueError("resized must be true or false")
        return ImageModality(resized)

    def binding(self, manifest: dict) -> dict:
        return {"resized": True} if manifest.get("resized") else {}  # an unresized dataset's bundle as before

    def decode_input(self, value, data, shape: list[int]):
        from augtrain.modalities.image.read import read_sent

        return read_sent(value, data, shape, self.resized)

    def owns_transform(self, name: str) -> bool:
        from augtrain.modalities.image.augment import is_transform

        return is_transform(name)

    def check_transform(self, name: str, params: dict[str, Any]) -> None:
        from augtrain.modalities.image.augment import check_transform

        check_transform(name, params)

    def augmenter(self, transforms: list[dict], seed: int | None = None):
        import functools

        from augtrain.modalities.image.augment import augment_images, build_pipeline

        return functools.partial(augment_images, build_pipeline(transforms, seed))

    def models(self) -> dict:
        from augtrain.modalities.image.models import MODELS

        return MODELS

    def draw(self, axis, sample: np.ndarray, before: np.ndarray | None = None) -> None:
        from augtrain.modalities.image.draw import show_image

        show_image(axis, sample)

    def report_pair(self, samples: np.ndarray, stats: dict, transforms: list[dict], seed: int):
        return samples, self.augmenter(transforms, seed)(samples) if transforms else None, None

    def plot_attributions(self, samples, attributions, titles, columns, stats):
        from augtrain.modalities.image.draw import plot_attributions

        return plot_attributions(samples, attributions, titles, columns)


IMAGE = ImageModality()
