"""Training in this process: a one-worker run without a Ray Train worker group.

A Ray Train run starts a controller, a worker group and a data coordinator, each a new process that
imports torch and Ray Train: about 25 s before the first epoch on 2 CPUs, where a digits epoch takes
0.3 s. A run of one CPU worker that asks for no restarts (`run.max_failures: 0`) runs the same
`train_loop` in the process that starts it (the driver, a Tune trial, a k-fold task) instead: the
Ray Data stream feeds it directly, and it keeps checkpoints where and as Ray Train would (the best
`train.keep_checkpoints` by validation, and the latest, from which a re-run resumes).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from ray.train import Checkpoint

from augtrain.datasets.storage import (
    copy_folder,
    filesystem,
    join,
    read_text,
    remove,
    subfolders,
    write_text,
)

CHECKPOINT = "checkpoint_{:06d}"  # by epoch: names sort in the order they were written
COMPLETE = "epoch.json"  # the epoch's metrics, written into a checkpoint last: a folder without it is incomplete


@dataclass
class LocalResult:
    """What `fit` returns, as ray.train.Result does: the last epoch's metrics and checkpoint, and every
    checkpoint kept with its metrics."""

    metrics: dict
    checkpoint: Checkpoint
    best_checkpoints: list[tuple[Checkpoint, dict]]
    error: Exception | None = None


class LocalSession:
    """What `train_loop` asks of its runner, in this process: the datasets as they are, checkpoints kept
    under `storage`/train, each epoch's metrics and checkpoint path passed to `tell` (to a Tune trial's
    `tune.report`)."""

    rank, world_size = 0, 1
    device = torch.device("cpu")

    def __init__(self, datasets: dict, storage: str, keep: int, rank_by: Callable, tell: Callable | None = None):
        self.datasets, self.folder, self.keep, self.rank_by, self.tell = datasets, join(storage, "train"), keep, rank_by, tell
        self.kept = []
        for name in subfolders(self.folder):
            if re.fullmatch(r"checkpoint_\d{6}", name):
                self._found(name)

    def shards(self):
        return self.datasets["train"], self.datasets["val"]

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def restored(self) -> Checkpoint | None:
        return self.kept[-1][0] if self.kept else None

    def report(self, metrics: dict, folder: str) -> None:
        """Keep the checkpoint in `folder` (rank 0 saves one every epoch); drop those no longer kept."""
        name = CHECKPOINT.format(metrics["epoch"])
        copy_folder(Path(folder), join(self.folder, name))
        write_text(join(self.folder, name, COMPLETE), json.dumps(metrics))
        candidates = [*self.kept, (self._checkpoint(name), metrics)]
        ranked = sorted(range(len(candidates)), key=lambda i: self.rank_by(candidates[i][1]), reverse=True)
        keep = set(ranked[: self.keep]) | {len(candidates) - 1}
        for i, (checkpoint, _) in enumerate(candidates):
            if i not in keep:
                remove(join(self.folder, Path(checkpoint.path).name))
        self.kept = [pair for i, pair in enumerate(candidates) if i in keep]
        self.report_again(metrics)

    def report_again(self, metrics: dict) -> None:
        """Pass `metrics` with the newest checkpoint's path to `tell`, writing nothing."""
        if self.tell:
            self.tell(metrics, self.kept[-1][0].path)

    def result(self) -> LocalResult:
        checkpoint, metrics = self.kept[-1]
        return LocalResult(metrics, checkpoint, self.kept)

    def _checkpoint(self, name: str) -> Checkpoint:
        fs, path = filesystem(join(self.folder, name))
        return Checkpoint(path, filesystem=fs)

    def _found(self, name: str) -> None:
        """Keep a checkpoint an earlier run of this one left, or remove it if its writer died before the end."""
        try:
            metrics = json.loads(read_text(join(self.folder, name, COMPLETE)) or "")
        except json.JSONDecodeError:
            remove(join(self.folder, name))
            return
        self.kept.append((self._checkpoint(name), metrics))
