"""The train split's statistics that turn samples into model input (the run's normalization.json): what
the modality fits (Modality.fit_stats: per-channel mean and std, or a text tokenizer), computed once per
dataset and cached beside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from augtrain.datasets.format import decode_samples, read_columns, split_files
from augtrain.datasets.storage import join, read_text, write_text
from augtrain.modalities import Modality, for_manifest


def _partial_sums(files: list[str], manifest: dict, reader: Modality) -> list[list[list[float]]]:
    """[count, sum, sum of squares] per channel of the `stat_values` of the samples in `files`."""
    samples = reader.stat_values(decode_samples(read_columns(files, ["x"]).column("x").to_pylist(), manifest))
    values = samples.astype(np.float64).reshape(-1, samples.shape[-1])  # NaN is sequence padding
    return [[(~np.isnan(values)).sum(0).tolist(), np.nansum(values, 0).tolist(), np.nansum(values**2, 0).tolist()]]


def channel_moments(dataset_dir: str | Path, manifest: dict, reader: Modality) -> dict:
    """Mean and std per channel of the train split's `stat_values`, summed in a Ray Data task per shard.

    Each task reads its shard and returns its sums alone: a read operator ahead of the sums would put every
    shard's samples in the object store, as fast as the reads go (the whole train split at once, measured).
    """
    # here: tasks run on Ray, and the modalities import this module in every process
    from augtrain.datasets.tasks import map_chunks

    n, total, squares = np.sum(map_chunks(_partial_sums, split_files(dataset_dir, "train"), 1, manifest=manifest,
                                          reader=reader), axis=0)
    mean = total / n
    var = squares / n - mean**2
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
