"""The train split's statistics that turn samples into model input (the run's normalization.json): what
the modality fits (Modality.fit_stats: per-channel mean and std, or a text tokenizer), computed once per
dataset and cached beside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from augtrain.datasets.format import decode_samples, split_files
from augtrain.datasets.storage import join, read_text, write_text
from augtrain.modalities import Modality, for_manifest


def _partial_sums(batch: dict, manifest: dict, reader: Modality) -> dict:
    samples = reader.stat_values(decode_samples(batch["x"], manifest)).astype(np.float64)
    values = samples.reshape(-1, samples.shape[-1])  # NaN is sequence padding
    return {"n": [(~np.isnan(values)).sum(0)], "sum": [np.nansum(values, 0)], "sumsq": [np.nansum(values**2, 0)]}


def channel_moments(dataset_dir: str | Path, manifest: dict, reader: Modality) -> dict:
    """Mean and std per channel of the train split's `stat_values`, summed in Ray Data tasks."""
    import ray  # here: the modalities import this module for `normalize` in every process

    parts = (
        ray.data.read_parquet(split_files(dataset_dir, "train"), columns=["x"])
        .map_batches(_partial_sums, fn_kwargs={"manifest": manifest, "reader": reader}, batch_format="numpy")
        .take_all()
    )
    n = sum(p["n"] for p in parts)
    mean = sum(p["sum"] for p in parts) / n
    var = sum(p["sumsq"] for p in parts) / n - mean**2
    std = np.sqrt(np.maximum(var, 0.0))
    return {"mean": mean.tolist(), "std": np.where(std > 1e-8, std, 1.0).tolist()}


def train_stats(dataset_dir: str | Path, manifest: dict) -> dict:
    """The modality's statistics of the train split, computed once per dataset (its hash) and cached beside it."""
    cache = join(str(dataset_dir), "stats.json")
    try:
        cached = json.loads(read_text(cache) or "{}")
    except (ValueError, RecursionError):  # a damaged cache is recomputed
        cached = {}
    if isinstance(cached, dict) and cached.get("hash") == manifest["hash"]:
        return cached
    stats = {"hash": manifest["hash"], **for_manifest(manifest).fit_stats(dataset_dir, manifest)}
    write_text(cache, json.dumps(stats))
    return stats
