"""Issue 18: a source sorted by class trains as well as the same rows in a random order.

Fashion-MNIST, 2,000 training images of each class (20,000 rows, 20 parts: beyond the 16 parts' worth of
rows within which collect shuffles a table's or an .npz's records), written as an .npz twice: in a random
order and one class after another. Each is collected and trained by jobs/fashion_resnet.yaml with the seed
CNN for one epoch (where the order of the rows shows most), seeds 0-2, and scored on Fashion-MNIST's
official test split. Goal: the sorted file's mean test accuracy within 1 point of the random file's.

    cd benchmarks && PYTHONPATH=. python collect_order.py
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from common import at_least, record
from image_accuracy import SEED_LIST, SEEDS, accuracy, listed
from image_data import fashion_subset

PER_CLASS = 2000
ONE_EPOCH = ["model.name=cnn", "model.params={dropout: 0.2}", "train.epochs=1"]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="augtrain-order-"))
    scores = {}
    for seed in SEEDS:
        for by_class in (False, True):
            source = fashion_subset(range(10), PER_CLASS, seed, by_class)
            overrides = [f"data.source={source}", f"data.path={work / source.stem}", f"data.seed={seed}",
                         f"train.seed={seed}", *ONE_EPOCH]
            scores.setdefault(by_class, []).append(accuracy("fashion_resnet.yaml", overrides, work)[0])
    ordered, shuffled = statistics.mean(scores[True]), statistics.mean(scores[False])
    record("collect_sorted_source", f"test={ordered:.4f} from an .npz sorted by class, mean of seeds {SEED_LIST} "
           f"({listed(scores[True])}); the same rows in a random order {shuffled:.4f} ({listed(scores[False])}); "
           f"Fashion-MNIST, {PER_CLASS} train images per class, the seed CNN, one epoch", at_least(shuffled - 0.01), ordered)


if __name__ == "__main__":
    main()
