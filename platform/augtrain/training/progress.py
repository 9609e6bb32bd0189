"""What a training process prints as it trains: on a terminal a live bar (this epoch's samples, the run's ETA)
above which each finished epoch leaves its line; elsewhere (logs, Ray workers, Tune trials) the lines alone."""

from __future__ import annotations

import sys
from typing import Iterator


class EpochLog:
    def __init__(self, epochs: int, samples: int, first: int):
        """`samples` per epoch, epochs `first`..`epochs`-1 to run."""
        self.epochs, self.bar = epochs, None
        if sys.stdout.isatty() and first < epochs:
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
                                TextColumn("{task.percentage:>3.0f}% of the run, ETA"), TimeRemainingColumn(), transient=True)
            self.task = self.bar.add_task("train", total=samples * (epochs - first), epoch=first + 1, epochs=epochs)
            self.bar.start()

    def counted(self, batches: Iterator[dict]) -> Iterator[dict]:
        """`batches`, moving the bar by each one's samples."""
        for batch in batches:
            yield batch
            if self.bar:
                self.bar.advance(self.task, len(batch["y"]))

    def epoch(self, metrics: dict) -> None:
        line = (f"epoch {metrics['epoch'] + 1}/{self.epochs}  train loss {metrics['train_loss']:.4f} "
                f"acc {metrics['train_accuracy']:.4f}  val loss {metrics['val_loss']:.4f} acc {metrics['val_accuracy']:.4f}")
        if self.bar:
            self.bar.console.print(line, markup=False, highlight=False)
            self.bar.update(self.task, epoch=min(metrics["epoch"] + 2, self.epochs))
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()
