"""Stream: Ray Data pipelines shard reads -> decode -> augment (train only); local reads of a split for scoring."""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import ray

from augtrain.config.spec import Job
from augtrain.datasets.format import decode_samples, read_columns, split_files
from augtrain.modalities import Modality, for_manifest
from augtrain.training.plan import Plan

POOL = ("train", "val")  # what k-fold cross-validation splits into folds; test stays untouched


@functools.lru_cache(maxsize=8)
def _augmenter(reader: Modality, transforms_json: str) -> Callable[[np.ndarray], np.ndarray]:
    """A transform list as a function of a batch of samples, built once per worker process.

    The modality imports its augmentation library (albumentations and torch: ~2 s) here, in the data
    tasks that augment: the other processes that unpickle a pipeline (Ray Data's coordinators of
    every Train run and trial, the tasks that read val and test) skip it.
    """
    return reader.augmenter(json.loads(transforms_json))


def augment(batch: dict, transforms_json: str, manifest: dict, stats: dict, reader: Modality) -> dict:
    """Decode and augment a train batch (shipped as the modality ships it: see Modality.ship).

    Ray Data starts a new actor pool for every pass over a dataset, so an actor per data worker
    would pay a process start and the albumentations import every epoch (4 s against 0.2 s of
    compute on digits). Tasks run on Ray's reused worker processes instead, and each process
    builds the Compose once for the whole run. It draws fresh entropy and keeps its state, so
    every epoch sees new augmentations; seeded pipelines are `Modality.augmenter(seed=...)`.
    """
    augmenter = _augmenter(reader, transforms_json)
    return {"x": reader.ship(decode_samples(batch["x"], manifest), stats, augmenter), "y": batch["y"]}


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


def prepare(batch: dict, manifest: dict, stats: dict, reader: Modality) -> dict:
    """Decode a batch for shipping, no augmentation (val, test)."""
    return {"x": reader.ship(decode_samples(batch["x"], manifest), stats), "y": batch["y"]}


def iter_split(dataset_dir: str | Path, manifest: dict, stats: dict, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A split's (model input, labels), one shard (<= 16 MiB stored) at a time, decoded and normalized in
    this process, without Ray: scoring a split runs the model in this process anyway and decoding is
    cheap beside it, so there is no Ray Data execution (nor worker processes) to start, and
    `augtrain evaluate` needs no Ray at all.
    """
    reader = for_manifest(manifest)
    for file in split_files(dataset_dir, split):
        table = read_columns([file], ["x", "y"])
        batch = prepare({"x": table.column("x").to_pylist(), "y": table.column("y").to_numpy()}, manifest, stats, reader)
        yield reader.model_input(batch["x"], stats), batch["y"]


def read_split(
    dataset_dir: str | Path, manifest: dict, stats: dict, split: str, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A split (or its first `limit` samples) in memory, as iter_split reads it."""
    xs, ys = [], []
    for x, y in iter_split(dataset_dir, manifest, stats, split):
        xs.append(x)
        ys.append(y)
        if limit is not None and sum(map(len, ys)) >= limit:
            break
    return np.concatenate(xs)[:limit], np.concatenate(ys)[:limit]


def read_shards(batch: dict, columns: list[str]) -> pa.Table:
    """Shards named in a batch -> their rows.

    A stream of `passes` passes is the list of shards repeated, one read task each: a `union` of
    reads would be an operator per pass, and Ray Data's scheduling loop walks every operator each step.
    """
    return read_columns(list(batch["file"]), columns)


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
    passes: int = 1,
    reader: Modality | None = None,
) -> ray.data.Dataset:
    """One split (or several) as a lazy Ray Data pipeline of shipped batches (see Modality.model_input).

    `transforms` are for training only. `ids` keeps only those rows: a k-fold's train or validation
    part of train+val. `passes` reads the split that many times over in one stream: every training
    epoch in a single execution.
    """
    remote = {"num_cpus": plan.cpus_per_data_task}
    files = [f for name in ((split,) if isinstance(split, str) else split) for f in split_files(dataset_dir, name)]
    shards = [{"file": file} for _ in range(passes) for file in files]
    columns = ["x", "y"] if ids is None else ["id", "x", "y"]
    ds = ray.data.from_items(shards, override_num_blocks=len(shards))
    ds = ds.map_batches(read_shards, fn_kwargs={"columns": columns}, batch_format="numpy", **remote)
    if ids is not None:
        ds = ds.map_batches(keep_rows, fn_kwargs={"ids": ids}, batch_format="numpy", **remote)
    kwargs = {"manifest": manifest, "stats": stats, "reader": reader or for_manifest(manifest)}
    if transforms:
        kwargs["transforms_json"] = json.dumps(list(transforms))
        return ds.map_batches(augment, fn_kwargs=kwargs, batch_format="numpy", **remote)
    return ds.map_batches(prepare, fn_kwargs=kwargs, batch_format="numpy", **remote)


@dataclass(frozen=True)
class CollectedData:
    """A collected dataset with its train-split normalization stats, ready to stream (`split` returns a
    Ray Data dataset)."""

    path: str  # an absolute folder or a URI
    manifest: dict
    stats: dict
    # resolved from the manifest's kind here, in the driver: Ray tasks and Train workers get the object
    modality: Modality | None = None

    def __post_init__(self):
        if self.modality is None:
            object.__setattr__(self, "modality", for_manifest(self.manifest))

    def split(
        self, name: str | tuple[str, ...], plan: Plan, transforms: list[dict] = (), ids=None, passes: int = 1
    ) -> ray.data.Dataset:
        return split_dataset(self.path, self.manifest, self.stats, name, plan, transforms, ids, passes, self.modality)

    def for_training(self, job: Job, plan: Plan, fold: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[dict, int]:
        """The train and val datasets of a Train run, and the training samples in one epoch.

        The train stream carries every epoch, augmented afresh each time, in one Ray Data execution:
        a new execution per epoch would wait for its first batch longer than a small epoch's compute;
        one stream keeps producing the next epoch while the workers train on this one. The val split is prepared once, here, and
        fetched once by the workers (left lazy, it slowed every later train pass: benchmarks/RESULTS.md).
        A k-fold's (train ids, val ids) split train+val instead of train and val.
        """
        split, train_ids, val_ids = ("train", None, None) if fold is None else (POOL, *fold)
        train = self.split(split, plan, [t.model_dump() for t in job.augment], train_ids, job.train.epochs)
        val = self.split("val", plan) if fold is None else self.split(POOL, plan, ids=val_ids)
        samples = sum(self.manifest["counts"]["train"].values()) if fold is None else len(train_ids)
        return {"train": train, "val": val.materialize()}, samples
