"""Predict: batch inference from a model bundle with Ray Data; an actor pool loads the model once per actor.

Inputs are listed by the model's modality as `collect` lists its sources and decoded in Ray Data tasks,
normalized as in training, scored by the actors and written as they come; bad inputs are quarantined
with the reason `collect` would give. The same reading serves `augtrain explain`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
import torch

from augtrain.artifacts.bundle import Bundle, load_bundle
from augtrain.config.spec import Data
from augtrain.datasets.format import decode_samples
from augtrain.datasets.sources import SourceError
from augtrain.modalities import known
from augtrain.training.runtime import cluster_cpus_gpus, start_ray

BATCH = 256


class Predictor:
    """A Ray Data actor: loads (and verifies) the bundle once, then scores batches of encoded samples."""

    def __init__(self, bundle_dir: str, public_key: str | None, modality):
        torch.set_num_threads(1)  # one actor per CPU
        self.bundle = load_bundle(bundle_dir, public_key, known(modality))

    def __call__(self, batch: dict, layout: dict) -> dict:
        good = batch["reason"] == ""
        classes = self.bundle.classes
        probabilities = np.full((len(good), len(classes)), np.nan, dtype=np.float32)
        if good.any():
            samples = model_ready(self.bundle, decode_samples(batch["x"][good], layout))
            with torch.no_grad():
                probabilities[good] = torch.softmax(self.bundle.model(torch.from_numpy(samples)), 1).numpy()
        best = np.nan_to_num(probabilities, nan=-1).argmax(1)
        return {
            "id": batch["id"],
            "label": batch["label"],
            "predicted": np.where(good, np.asarray(classes, dtype=object)[best], ""),
            "probability": probabilities[np.arange(len(best)), best],
            **{f"p_{name}": probabilities[:, i] for i, name in enumerate(classes)},
            "reason": batch["reason"],
        }


def model_ready(bundle: Bundle, samples: np.ndarray) -> np.ndarray:
    """Decoded inputs -> the model's input, as training shipped and normalized them."""
    return bundle.modality.model_input(bundle.modality.ship(samples, bundle.stats), bundle.stats)


def read_inputs(bundle: Bundle, source: Path) -> tuple[ray.data.Dataset, dict, bool]:
    """Rows (id, label, x bytes, reason) of `source` as a Ray Data dataset, read by the model's modality
    as `collect` reads its sources; the layout of x; whether the inputs carry labels."""
    # decoded as in training (resize, channels), but read with the user's defaults for what decides which
    # files are opened at all: a bundle from elsewhere must not turn on following links out of the folder
    data = bundle.job.data.model_copy(update={
        "source": str(source), "kind": bundle.modality.kind, "follow_links": False,
        "max_pixels": Data.model_fields["max_pixels"].default,
    })
    return bundle.modality.prediction_inputs(data, bundle.shape)


def predict(bundle_path: Path, source: Path, out: Path, address: str | None = None,
            echo: Callable[[str], None] = print, public_key: str | None = None) -> tuple[int, int]:
    """Write predictions for `source` to `out` and quarantined inputs beside it; return both counts."""
    bundle = load_bundle(bundle_path, public_key)
    start_ray(address)
    ds, layout, labelled = read_inputs(bundle, source)
    actors = max(1, int(cluster_cpus_gpus()[0]) - 1)  # one CPU is left to the decoding tasks
    echo(f"predicting {source} with {bundle.job.model.name} on up to {actors} actor(s)")
    scored = ds.map_batches(
        Predictor,
        fn_constructor_kwargs={"bundle_dir": str(Path(bundle_path).resolve()), "public_key": public_key,
                               "modality": bundle.modality},
        fn_kwargs={"layout": layout},
        batch_format="numpy", batch_size=BATCH, num_cpus=1,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    counts, writers = [0, 0], [None, None]
    try:
        for batch in scored.iter_batches(batch_format="pyarrow", batch_size=None):
            bad = pc.not_equal(batch.column("reason"), "")
            predictions = batch.filter(pc.invert(bad)).drop_columns(["reason"] if labelled else ["reason", "label"])
            for n, (table, path) in enumerate(((predictions, out), (batch.filter(bad).select(["id", "reason"]), quarantine_path(out)))):
                if writers[n] is None:
                    writers[n] = pq.ParquetWriter(path, table.schema)
                writers[n].write_table(table.cast(writers[n].schema))
                counts[n] += len(table)
    finally:
        for writer in writers:
            if writer is not None:
                writer.close()
    if writers[0] is None:
        raise SourceError(f"{source}: no inputs")
    return counts[0], counts[1]




def quarantine_path(out: Path) -> Path:
    """Where predict writes the inputs it could not score: beside `out`, same schema as collect's."""
    return out.with_name(f"{out.stem}.quarantine.parquet")
