"""Stream: Ray Data pipelines read_parquet -> decode -> augment (train only) + normalize."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import pyarrow.parquet as pq
import ray

from augtrain.augment import augment_images, build_pipeline
from augtrain.collect import decode_samples, split_files
from augtrain.normalize import normalize
from augtrain.plan import Plan
from augtrain.sequence_augment import SequencePipeline


@functools.lru_cache(maxsize=8)
def _pipeline(transforms_json: str) -> A.Compose | SequencePipeline:
    return build_pipeline(json.loads(transforms_json))


def augment(batch: dict, transforms_json: str, manifest: dict, stats: dict) -> dict:
    """Decode, augment and normalize a train batch.

    Ray Data starts a new actor pool for every pass over a dataset, so an actor per data worker
    would pay a process start and the albumentations import every epoch (4 s against 0.2 s of
    compute on digits). Tasks run on Ray's reused worker processes instead, and each process
    builds the Compose once for the whole run. It draws fresh entropy and keeps its state, so
    every epoch sees new augmentations; seeded pipelines are `build_pipeline(seed=...)`.
    Images are augmented as uint8 before normalization, as albumentations expects; sequences
    after it, so that noise and warp sizes are in units of the normalized signal.
    """
    pipeline, samples = _pipeline(transforms_json), decode_samples(batch["x"], manifest)
    if isinstance(pipeline, SequencePipeline):
        return {"x": pipeline(normalize(samples, stats)), "y": batch["y"]}
    return {"x": normalize(augment_images(pipeline, samples), stats), "y": batch["y"]}


def configure_data(progress_bars: bool = True) -> None:
    """Ray Data settings for this process, before any dataset is built.

    Progress bars only on a terminal: not in logs (a submitted job's, CI's), nor from a tune trial
    or k-fold fold, which builds its datasets in a Ray task (they would interleave with every run's
    epoch lines).
    """
    context = ray.data.DataContext.get_current()
    # Ray 2.60's DataSource V2 lists files in a task that always asks for a whole CPU, which the
    # planned data share can leave unfilled forever: read Parquet with the V1 reader.
    context.use_datasource_v2 = False
    context.enable_progress_bars = progress_bars and sys.stdout.isatty()


def prepare(batch: dict, manifest: dict, stats: dict) -> dict:
    """Decode and normalize a batch, no augmentation (val, test, predict)."""
    return {"x": normalize(decode_samples(batch["x"], manifest), stats), "y": batch["y"]}


def read_split(
    dataset_dir: str | Path, manifest: dict, stats: dict, split: str, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A split (or its first `limit` samples) decoded and normalized in this process, without Ray."""
    table = pq.ParquetDataset(split_files(dataset_dir, split)).read(columns=["x", "y"]).slice(0, limit)
    batch = prepare({"x": table.column("x").to_pylist(), "y": table.column("y").to_numpy()}, manifest, stats)
    return batch["x"], batch["y"]


def keep_rows(batch: dict, ids: np.ndarray) -> dict:
    """The rows of a batch whose id is in `ids` (a k-fold's share of train+val)."""
    keep = np.isin(batch["id"], ids)
    return {name: column[keep] for name, column in batch.items() if name != "id"}


def split_dataset(
    dataset_dir: str | Path,
    manifest: dict,
    stats: dict,
    split: str | tuple[str, ...],
    plan: Plan,
    transforms: list[dict[str, Any]] = (),
    ids: np.ndarray | None = None,
) -> ray.data.Dataset:
    """One split (or several) as a lazy Ray Data pipeline; `transforms` are for training only.

    `ids` keeps only those rows: a k-fold's train or validation part of train+val.
    """
    remote = {"num_cpus": plan.cpus_per_data_task}
    files = [f for name in ((split,) if isinstance(split, str) else split) for f in split_files(dataset_dir, name)]
    ds = ray.data.read_parquet(files, columns=["x", "y"] if ids is None else ["id", "x", "y"], **remote)
    if ids is not None:
        ds = ds.map_batches(keep_rows, fn_kwargs={"ids": ids}, batch_format="numpy", **remote)
    if transforms:
        kwargs = {"transforms_json": json.dumps(list(transforms)), "manifest": manifest, "stats": stats}
        return ds.map_batches(augment, fn_kwargs=kwargs, batch_format="numpy", **remote)
    return ds.map_batches(prepare, fn_kwargs={"manifest": manifest, "stats": stats}, batch_format="numpy", **remote)
