"""Normalize: per-channel mean/std computed once on the train split with Ray Data, or per series."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import ray

from augtrain.collect import decode_samples, split_files
from augtrain.storage import join, read_text, write_text

SERIES = {"mode": "series"}  # stats of a job that z-normalizes each sequence by itself


def to_unit(images: np.ndarray) -> np.ndarray:
    """Samples as float32; uint8 images are mapped to [0, 1]."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32, copy=False)


def normalize(samples: np.ndarray, stats: dict) -> np.ndarray:
    """Standardize per channel: images (N, H, W, C) -> float32 (N, C, H, W); sequences (N, T, C) keep their layout.

    With SERIES stats each sample is z-normalized per channel over its own steps or pixels (the
    UCR archive's convention for sequences); NaN padding stays NaN. Channel stats take one fused
    pass (cast and transpose into the output, then scale and shift in place): a 224x224 RGB batch
    is mostly memory traffic, and every temporary array costs as much as the arithmetic.
    """
    if stats.get("mode") == SERIES["mode"]:
        x = to_unit(samples)
        axes = tuple(range(1, x.ndim - 1))
        mean = np.nanmean(x, axis=axes, keepdims=True)
        std = np.nanstd(x, axis=axes, keepdims=True)
        x = (x - mean) / np.where(std > 1e-8, std, 1.0).astype(np.float32)
        return np.ascontiguousarray(x if x.ndim == 3 else x.transpose(0, 3, 1, 2))
    std = np.asarray(stats["std"], dtype=np.float64)
    std = np.where(std > 1e-8, std, 1.0)
    scale = (1 / 255 if samples.dtype == np.uint8 else 1.0) / std
    shift = -np.asarray(stats["mean"], dtype=np.float64) / std
    if samples.ndim == 4:  # channels first for torch: the channel axis becomes axis 1
        samples = samples.transpose(0, 3, 1, 2)
        scale, shift = scale[:, None, None], shift[:, None, None]
    out = np.empty(samples.shape, dtype=np.float32)
    out[...] = samples
    out *= scale.astype(np.float32)
    out += shift.astype(np.float32)
    return out


# Images travel decoded (and augmented) in their stored dtype, (N, H, W, C), and are normalized by
# whoever consumes them: uint8 is a quarter of float32's bytes through the object store, and a
# 224x224 RGB stream spent more on moving floats than on augmenting. Sequences are normalized by
# the data workers, before augmentation (noise and warp sizes are in units of the normalized signal).
NORMALIZED_BY_CONSUMER = {"image"}


def to_ship(samples: np.ndarray, stats: dict, kind: str) -> np.ndarray:
    """Decoded samples -> what the data workers augment and ship."""
    return samples if kind in NORMALIZED_BY_CONSUMER else normalize(samples, stats)


def model_input(shipped: np.ndarray, stats: dict, kind: str) -> np.ndarray:
    """A batch as the data workers ship it -> the model's input."""
    return normalize(shipped, stats) if kind in NORMALIZED_BY_CONSUMER else shipped


def _partial_sums(batch: dict, manifest: dict) -> dict:
    samples = to_unit(decode_samples(batch["x"], manifest)).astype(np.float64)
    values = samples.reshape(-1, samples.shape[-1])  # NaN is sequence padding
    return {"n": [(~np.isnan(values)).sum(0)], "sum": [np.nansum(values, 0)], "sumsq": [np.nansum(values**2, 0)]}


def channel_stats(dataset_dir: str | Path, manifest: dict) -> dict:
    """Mean and std per channel of the train split, computed once per dataset and cached beside it."""
    cache = join(str(dataset_dir), "stats.json")
    try:
        cached = json.loads(read_text(cache) or "{}")
    except (ValueError, RecursionError):  # a damaged cache is recomputed
        cached = {}
    if isinstance(cached, dict) and cached.get("hash") == manifest["hash"]:
        return cached
    parts = (
        ray.data.read_parquet(split_files(dataset_dir, "train"), columns=["x"])
        .map_batches(_partial_sums, fn_kwargs={"manifest": manifest}, batch_format="numpy")
        .take_all()
    )
    n = sum(p["n"] for p in parts)
    mean = sum(p["sum"] for p in parts) / n
    var = sum(p["sumsq"] for p in parts) / n - mean**2
    std = np.sqrt(np.maximum(var, 0.0))
    stats = {"hash": manifest["hash"], "mean": mean.tolist(), "std": np.where(std > 1e-8, std, 1.0).tolist()}
    write_text(cache, json.dumps(stats))
    return stats
