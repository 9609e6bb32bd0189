"""Sequence augmentation: NumPy transforms over a whole (N, T, C) batch, declared in YAML like image ones.

Series are NaN-padded at the end (see modalities/sequence/read.py); every transform works on each series' own
length and leaves the padding NaN. They run after normalization, so sigmas are in units of the
normalized signal. The methods follow Um et al. 2017 (jitter, scaling, magnitude and time warp)
and Le Guennec et al. 2016 (window slicing, window warping).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class SequenceTransform(BaseModel):
    """Applied to each series of a batch with probability `p`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    p: float = Field(0.5, ge=0, le=1)

    def __call__(self, x: np.ndarray, lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        chosen = rng.random(len(x)) < self.p
        if not chosen.any():
            return x
        out = x.copy()
        out[chosen] = self.apply(x[chosen], lengths[chosen], rng)
        return out

    def apply(self, x: np.ndarray, lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


class Jitter(SequenceTransform):
    """Add Gaussian noise of standard deviation `sigma` to every value."""

    sigma: float = Field(0.03, gt=0)

    def apply(self, x, lengths, rng):
        return x + rng.normal(0.0, self.sigma, x.shape).astype(x.dtype)


class Scaling(SequenceTransform):
    """Multiply each channel of a series by one factor drawn from N(1, sigma)."""

    sigma: float = Field(0.1, gt=0)

    def apply(self, x, lengths, rng):
        return x * rng.normal(1.0, self.sigma, (len(x), 1, x.shape[2])).astype(x.dtype)


class MagnitudeWarp(SequenceTransform):
    """Multiply by a smooth random curve through `knots` points drawn from N(1, sigma)."""

    sigma: float = Field(0.2, gt=0)
    knots: int = Field(4, ge=1)

    def apply(self, x, lengths, rng):
        values = rng.normal(1.0, self.sigma, (len(x), self.knots + 2, x.shape[2]))
        return x * smooth_curve(values, _relative_time(x.shape[1], lengths)).astype(x.dtype)


class TimeWarp(SequenceTransform):
    """Resample along a smooth random time axis (speed through `knots` points from N(1, sigma)); ends stay put."""

    sigma: float = Field(0.2, gt=0)
    knots: int = Field(4, ge=1)

    def apply(self, x, lengths, rng):
        steps = x.shape[1]
        speed = np.clip(rng.normal(1.0, self.sigma, (len(x), self.knots + 2, 1)), 0.1, None)
        speed = smooth_curve(speed, _relative_time(steps, lengths))[..., 0]
        speed = np.clip(speed, 0.05, None) * (np.arange(steps) < lengths[:, None])
        elapsed = np.cumsum(speed, axis=1) - speed[:, :1]
        total = np.take_along_axis(elapsed, (lengths - 1)[:, None], 1)
        return resample(x, elapsed / np.maximum(total, 1e-12) * (lengths - 1)[:, None], lengths)


class WindowSlice(SequenceTransform):
    """Crop a random window of `ratio` of the series and stretch it back to the full length."""

    ratio: float = Field(0.9, gt=0, le=1)

    def apply(self, x, lengths, rng):
        width = np.maximum(np.ceil(self.ratio * lengths), 2).astype(int)
        start = (rng.random(len(x)) * (lengths - width + 1)).astype(int)
        scale = (width - 1) / np.maximum(lengths - 1, 1)
        return resample(x, start[:, None] + np.arange(x.shape[1]) * scale[:, None], lengths)


class WindowWarp(SequenceTransform):
    """Speed a random window of `ratio` of the series up or down by one of `scales`, then resize back."""

    ratio: float = Field(0.1, gt=0, lt=1)
    scales: list[float] = Field([0.5, 2.0], min_length=1)

    def apply(self, x, lengths, rng):
        last = (lengths - 1).astype(float)
        width = np.maximum(np.round(self.ratio * last), 1)
        a = np.floor(rng.random(len(x)) * (last - width + 1))
        b = a + width
        scale = rng.choice(np.asarray(self.scales, dtype=float), len(x))
        # the warped series spans `extent`; output step t samples it at t * extent / last
        extent = last + width * (scale - 1)
        q = np.arange(x.shape[1]) * (extent / np.maximum(last, 1))[:, None]
        a, b, scale = a[:, None], b[:, None], scale[:, None]
        inside_end = a + width[:, None] * scale
        source = np.where(q <= a, q, np.where(q <= inside_end, a + (q - a) / scale, b + (q - inside_end)))
        return resample(x, source, lengths)


TRANSFORMS: dict[str, type[SequenceTransform]] = {
    t.__name__: t for t in (Jitter, Scaling, MagnitudeWarp, TimeWarp, WindowSlice, WindowWarp)
}


def _relative_time(steps: int, lengths: np.ndarray) -> np.ndarray:
    """(N, T) position of each step in its own series, 0 at the first step and 1 at the last."""
    return np.clip(np.arange(steps) / np.maximum(lengths - 1, 1)[:, None], 0.0, 1.0)


def smooth_curve(values: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Catmull-Rom spline through (N, K, C) knot values spaced evenly on [0, 1], at (N, T) positions u."""
    knots = values.shape[1]
    s = u * (knots - 1)
    i = np.clip(np.floor(s).astype(int), 0, knots - 2)
    f = (s - i)[..., None]

    def at(j):
        return np.take_along_axis(values, np.clip(j, 0, knots - 1)[..., None], 1)

    p0, p1, p2, p3 = at(i - 1), at(i), at(i + 1), at(i + 2)
    return 0.5 * (2 * p1 + (p2 - p0) * f + (2 * p0 - 5 * p1 + 4 * p2 - p3) * f**2 + (3 * (p1 - p2) + p3 - p0) * f**3)


def resample(x: np.ndarray, positions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Linear interpolation of each series at fractional (N, T) `positions`; steps past its length stay NaN."""
    steps = np.arange(x.shape[1])
    valid = steps < lengths[:, None]
    pos = np.clip(np.where(valid, positions, 0.0), 0.0, (lengths - 1)[:, None])
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, (lengths - 1)[:, None])
    f = (pos - lo)[..., None].astype(x.dtype)
    out = np.take_along_axis(x, lo[..., None], 1) * (1 - f) + np.take_along_axis(x, hi[..., None], 1) * f
    out[~valid] = np.nan
    return out


def series_lengths(x: np.ndarray) -> np.ndarray:
    """Steps before the NaN padding, per series of an (N, T, C) batch."""
    return (~np.isnan(x[..., 0])).sum(1)


class SequencePipeline:
    """Transforms applied in order; `seed=None` draws fresh entropy, and the state carries across batches."""

    def __init__(self, transforms: list[dict], seed: int | None = None):
        self.steps = [TRANSFORMS[t["name"]](**{k: v for k, v in t.items() if k != "name"}) for t in transforms]
        self.rng = np.random.default_rng(seed)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        lengths = series_lengths(x)
        for step in self.steps:
            x = step(x, lengths, self.rng)
        return x
