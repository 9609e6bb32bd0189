"""Stream: Ray Data pipelines shard reads -> decode -> augment (train only); local reads of a split for scoring."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import ray

from augtrain.config.spec import Job
from augtrain.datasets.format import decode_samples, read_columns, split_files
from augtrain.datasets.sources import sample_bytes
from augtrain.modalities import Modality, for_manifest
from augtrain.training.plan import Plan

POOL = ("train", "val")  # what k-fold cross-validation splits into folds; test stays untouched


ROW_BITS = 16  # a shard holds at most 1024 rows (datasets/collect.py): a row's key is (pass, shard, row)


def augment(batch: dict, transforms_json: str, seed: int, manifest: dict, stats: dict, reader: Modality) -> dict:
    """Decode and augment a train batch (shipped as the modality ships it: see Modality.ship).

    The augmentation is seeded by the run's seed and the key of the batch's first row: the same draws
    for the same rows on any number of data tasks, new ones every pass. Tasks run on Ray's reused
    worker processes (an actor pool would start anew every pass), which import the modality's
    augmentation library (albumentations and torch: ~2 s) once; the other processes that unpickle a
    pipeline (Train's data coordinators, the tasks that read val and test) skip it.
    """
    draw = int(np.random.SeedSequence([seed, int(batch["key"][0])]).generate_state(1)[0])
    augmenter = reader.augmenter(json.loads(transforms_json), draw)
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
    """Shards named in a batch -> their rows, each keyed by (pass, shard, row) where the batch has keys.

    A stream of `passes` passes is the list of shards repeated, one read task each: a `union` of
    reads would be an operator per pass, and Ray Data's scheduling loop walks every operator each step.
    """
    tables = [read_columns([file], columns) for file in batch["file"]]
    if "key" in batch:
        tables = [table.append_column("key", pa.array(np.arange(table.num_rows, dtype=np.uint64) + key))
                  for table, key in zip(tables, batch["key"])]
    return pa.concat_tables(tables)


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
    seed: int = 0,
) -> ray.data.Dataset:
    """One split (or several) as a lazy Ray Data pipeline of shipped batches (see Modality.model_input).

    `transforms` are for training only, drawn from `seed`. `ids` keeps only those rows: a k-fold's train or validation
    part of train+val. `passes` reads the split that many times over in one stream: every training
    epoch in a single execution.
    """
    remote = {"num_cpus": plan.cpus_per_data_task}
    files = [f for name in ((split,) if isinstance(split, str) else split) for f in split_files(dataset_dir, name)]
    shards = [{"file": file, "key": (p * len(files) + i) << ROW_BITS} for p in range(passes) for i, file in enumerate(files)]
    columns = ["x", "y"] if ids is None else ["id", "x", "y"]
    ds = ray.data.from_items(shards, override_num_blocks=len(shards))
    ds = ds.map_batches(read_shards, fn_kwargs={"columns": columns}, batch_format="numpy", **remote)
    if ids is not None:
        ds = ds.map_batches(keep_rows, fn_kwargs={"ids": ids}, batch_format="numpy", **remote)
    kwargs = {"manifest": manifest, "stats": stats, "reader": reader or for_manifest(manifest)}
    if transforms:
        kwargs.update(transforms_json=json.dumps(list(transforms)), seed=seed)
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
        self, name: str | tuple[str, ...], plan: Plan, transforms: list[dict] = (), ids=None, passes: int = 1, seed: int = 0
    ) -> ray.data.Dataset:
        return split_dataset(self.path, self.manifest, self.stats, name, plan, transforms, ids, passes, self.modality, seed)

    def for_training(self, job: Job, plan: Plan, fold: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[dict, int]:
        """The train and val datasets of a Train run, and the training samples in one epoch.

        The train stream carries every epoch, augmented afresh each time, in one Ray Data execution:
        a new execution per epoch would wait for its first batch longer than a small epoch's compute;
        one stream keeps producing the next epoch while the workers train on this one. The val split is prepared once, here, and
        fetched once by the workers (left lazy, it slowed every later train pass: benchmarks/RESULTS.md).
        A k-fold's (train ids, val ids) split train+val instead of train and val.
        """
        split, train_ids, val_ids = ("train", None, None) if fold is None else (POOL, *fold)
        train = self.split(split, plan, [t.model_dump() for t in job.augment], train_ids, job.train.epochs, job.train.seed)
        val = self.split("val", plan) if fold is None else self.split(POOL, plan, ids=val_ids)
        return {"train": train, "val": val.materialize()}, self.train_samples(fold)

    def train_samples(self, fold: tuple[np.ndarray, np.ndarray] | None = None) -> int:
        """Samples in one training epoch: the train split's, or a k-fold's train part."""
        return sum(self.manifest["counts"]["train"].values()) if fold is None else len(fold[0])

    def sample_bytes(self) -> int:
        """One decoded sample's bytes."""
        return sample_bytes(self.manifest["shape"], self.manifest["dtype"])
