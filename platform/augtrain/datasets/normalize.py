"""Normalize: samples standardized per channel with train-split statistics, or each series by itself."""

from __future__ import annotations

import numpy as np

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
        wide = x.astype(np.float64)  # float32 squares overflow past 1e19 (nanstd squares in its input's dtype)
        mean = np.nanmean(wide, axis=axes, keepdims=True)
        std = np.nanstd(wide, axis=axes, keepdims=True)
        x = ((wide - mean) / np.where(std > 1e-8, std, 1.0)).astype(np.float32)
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
