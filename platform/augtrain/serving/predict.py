"""Predict: batch inference from a model bundle, in this process or with Ray Data and an actor pool.

Inputs are listed by the model's modality as `collect` lists its sources, decoded, normalized as in
training, scored and written as they come; bad inputs are quarantined with the reason `collect` would
give. Up to `IN_PROCESS` inputs without a cluster named are decoded and scored in this process: starting
Ray and its workers costs more than they save there. More, or a cluster: Ray Data tasks decode, an actor
pool (the model loaded once per actor) scores. The same reading serves `augtrain explain`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from augtrain.artifacts.bundle import Bundle, load_bundle
from augtrain.config.spec import Data
from augtrain.datasets.format import decode_samples
from augtrain.datasets.sources import Listing, SourceError
from augtrain.datasets.tasks import decoded_batches, decoded_rows
from augtrain.modalities import known

BATCH = 256
IN_PROCESS = 10_000  # inputs: at most this many (and no cluster named) are predicted without Ray


def score(bundle: Bundle, batch: dict, layout: dict) -> dict:
    """A batch of decoded rows (id, label, x bytes, reason) -> prediction rows (the bad ones kept, empty)."""
    good = batch["reason"] == ""
    classes = bundle.classes
    probabilities = np.full((len(good), len(classes)), np.nan, dtype=np.float32)
    if good.any():
        samples = model_ready(bundle, decode_samples(batch["x"][good], layout))
        with torch.no_grad():
            probabilities[good] = torch.softmax(bundle.model(torch.from_numpy(samples)), 1).numpy()
    best = np.nan_to_num(probabilities, nan=-1).argmax(1)
    return {
        "id": batch["id"],
        "label": batch["label"],
        "predicted": np.where(good, np.asarray(classes, dtype=object)[best], ""),
        "probability": probabilities[np.arange(len(best)), best],
        **{f"p_{name}": probabilities[:, i] for i, name in enumerate(classes)},
        "reason": batch["reason"],
    }


class Predictor:
    """A Ray Data actor: loads (and verifies) the bundle once, then scores batches."""

    def __init__(self, bundle_dir: str, public_key: str | None, modality):
        torch.set_num_threads(1)  # one actor per CPU
        self.bundle = load_bundle(bundle_dir, public_key, known(modality))

    def __call__(self, batch: dict, layout: dict) -> dict:
        return score(self.bundle, batch, layout)


def model_ready(bundle: Bundle, samples: np.ndarray) -> np.ndarray:
    """Decoded inputs -> the model's input, as training shipped and normalized them."""
    return bundle.modality.model_input(bundle.modality.ship(samples, bundle.stats), bundle.stats)


def read_inputs(bundle: Bundle, source: Path) -> tuple[Listing, dict, bool]:
    """The listing of `source`, read by the model's modality as `collect` reads its sources; the layout of
    its decoded samples; whether the inputs carry labels."""
    return bundle.modality.prediction_inputs(prediction_data(bundle, str(source)), bundle.shape)


def prediction_data(bundle: Bundle, source: str) -> Data:
    """The bundle's data section for reading inputs to predict from `source` (a served model's too)."""
    # decoded as in training (resize, channels), but read with the user's defaults for what decides which
    # files are opened at all: a bundle from elsewhere must not turn on following links out of the folder
    return bundle.job.data.model_copy(update={
        "source": source, "kind": bundle.modality.kind, "follow_links": False,
        "max_pixels": Data.model_fields["max_pixels"].default,
    })


def predict(bundle_path: Path, source: Path, out: Path, address: str | None = None,
            echo: Callable[[str], None] = print, public_key: str | None = None) -> tuple[int, int]:
    """Write predictions for `source` to `out` and quarantined inputs beside it; return both counts."""
    bundle = load_bundle(bundle_path, public_key)
    listing, layout, labelled = read_inputs(bundle, source)
    inputs = len(listing.ids)
    here = address is None and not os.environ.get("RAY_ADDRESS")  # every reader runs on this machine
    with tempfile.TemporaryDirectory(prefix="augtrain-predict-") as scratch:
        if here:  # a compressed .npz inflated once, as collect does, not from its start by every batch
            listing.reader.staged(scratch)
        if here and inputs <= IN_PROCESS:
            echo(f"predicting {source} ({inputs} inputs) with {bundle.job.model.name} in this process")
            tables = (pa.table(score(bundle, batch, layout)) for batch in decoded_batches(listing, BATCH))
        else:
            tables = scored_by_ray(bundle, bundle_path, public_key, listing, layout, address, echo)
        counts = write_predictions(tables, out, labelled)
    if counts is None:
        raise SourceError(f"{source}: no inputs")
    return counts


def scored_by_ray(bundle: Bundle, bundle_path: Path, public_key: str | None, listing: Listing, layout: dict,
                  address: str | None, echo: Callable[[str], None]) -> Iterator[pa.Table]:
    """Prediction rows from Ray Data: decoding tasks, then an actor pool."""
    import ray

    from augtrain.training.runtime import cluster_cpus_gpus, start_ray

    start_ray(address)
    actors = max(1, int(cluster_cpus_gpus()[0]) - 1)  # one CPU is left to the decoding tasks
    echo(f"predicting {len(listing.ids)} inputs with {bundle.job.model.name} on up to {actors} actor(s)")
    scored = decoded_rows(listing, BATCH).map_batches(
        Predictor,
        fn_constructor_kwargs={"bundle_dir": str(Path(bundle_path).resolve()), "public_key": public_key,
                               "modality": bundle.modality},
        fn_kwargs={"layout": layout},
        batch_format="numpy", batch_size=BATCH, num_cpus=1,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
    )
    return scored.iter_batches(batch_format="pyarrow", batch_size=None)


def write_predictions(tables: Iterator[pa.Table], out: Path, labelled: bool) -> tuple[int, int] | None:
    """Prediction rows into `out`, the bad ones into the quarantine beside it, as they come: the counts of
    both, or None if there were no rows."""
    out.parent.mkdir(parents=True, exist_ok=True)
    counts, writers = [0, 0], [None, None]
    try:
        for batch in tables:
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
    return None if writers[0] is None else (counts[0], counts[1])


def quarantine_path(out: Path) -> Path:
    """Where predict writes the inputs it could not score: beside `out`, same schema as collect's."""
    return out.with_name(f"{out.stem}.quarantine.parquet")
