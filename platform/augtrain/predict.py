"""Predict: batch inference from a model bundle with Ray Data; an actor pool loads the model once per actor.

The same input reading serves `augtrain explain` (attribution maps for the first inputs).

Inputs are decoded and normalized by the same code as training (no augmentation) and bad inputs
are quarantined with the reason `collect` would give: image folders are decoded file by file in
Ray Data tasks; tables and time-series files are read like `collect` reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
import torch

from augtrain.bundle import Bundle, load_bundle
from augtrain.collect import decode_samples
from augtrain.explain import explain_samples
from augtrain.files import walk
from augtrain.models import model_kind
from augtrain.normalize import normalize
from augtrain.run import cluster_cpus_gpus, start_ray
from augtrain.sources import SourceError, load_source, read_image
from augtrain.spec import Data

BATCH = 256


class Predictor:
    """A Ray Data actor: loads (and verifies) the bundle once, then scores batches of encoded samples."""

    def __init__(self, bundle_dir: str, public_key: str | None):
        torch.set_num_threads(1)  # one actor per CPU
        self.bundle = load_bundle(bundle_dir, public_key)

    def __call__(self, batch: dict, layout: dict) -> dict:
        good = batch["reason"] == ""
        classes = self.bundle.classes
        probabilities = np.full((len(good), len(classes)), np.nan, dtype=np.float32)
        if good.any():
            samples = normalize(decode_samples(batch["x"][good], layout), self.bundle.stats)
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


def _image_rows(batch: dict, data, shape: list[int]) -> dict:
    """Decode a batch of image files (Ray Data task); unreadable or misfit files carry their reason."""
    images, reasons = [], []
    for path, refused in zip(batch["path"], batch["refused"]):
        image, reason = (None, refused) if refused else read_image(Path(path), data, shape[2], (shape[1], shape[0]))
        images.append(b"" if reason else image.tobytes())
        reasons.append(reason or "")
    return {"id": batch["id"], "label": batch["label"], "x": np.asarray(images, dtype=object),
            "reason": np.asarray(reasons, dtype=object)}


def read_inputs(bundle: Bundle, source: Path) -> tuple[ray.data.Dataset, dict]:
    """Rows (id, label, x bytes, reason) of `source` as a Ray Data dataset, and the layout of x."""
    # decoded as in training (resize, channels), but read with the user's defaults for what decides which
    # files are opened at all: a bundle from elsewhere must not turn on following links out of the folder
    data = bundle.job.data.model_copy(update={
        "source": str(source), "follow_links": False, "max_pixels": Data.model_fields["max_pixels"].default,
    })
    kind, shape = model_kind(bundle.job.model.name), bundle.shape
    if source.is_dir() and kind == "image":
        # any file below the folder (links, FIFOs and devices refused as collect refuses them); a
        # sub-folder name is taken as the true label
        listing = walk(source, data.follow_links)
        if not listing.files and not listing.rejects:
            raise SourceError(f"{source}: no files to predict")
        items = [{"id": id_, "path": str(path), "label": Path(id_).parts[0] if len(Path(id_).parts) > 1 else "",
                  "refused": ""} for id_, path in listing.files]
        items += [{"id": id_, "path": "", "label": "", "refused": reason} for id_, reason in listing.rejects]
        ds = ray.data.from_items(items).map_batches(
            _image_rows, fn_kwargs={"data": data, "shape": shape}, batch_format="numpy",
            batch_size=64, num_cpus=0.5,
        )
        return ds, {"dtype": "uint8", "shape": shape}
    loaded = load_source(data, labelled=False)
    found = list(loaded.samples[0].shape) if loaded.samples else shape
    # sequence models take any length; image models exactly their shape
    if loaded.kind != kind or (kind == "image" and found != shape):
        raise SourceError(f"{source}: {loaded.kind}s of shape {found} do not fit the model ({kind}s of shape {shape})")
    rows = [{"id": i, "label": label, "x": np.ascontiguousarray(s).tobytes(), "reason": ""}
            for i, s, label in zip(loaded.ids, loaded.samples, loaded.labels)]
    rows += [{"id": i, "label": "", "x": b"", "reason": reason} for i, reason in loaded.rejects]
    return ray.data.from_items(rows), {"dtype": str(loaded.samples[0].dtype) if loaded.samples else "float32",
                                       "shape": found}


def predict(bundle_path: Path, source: Path, out: Path, address: str | None = None,
            echo: Callable[[str], None] = print, public_key: str | None = None) -> tuple[int, int]:
    """Write predictions for `source` to `out` and quarantined inputs beside it; return both counts."""
    bundle = load_bundle(bundle_path, public_key)
    start_ray(address)
    ds, layout = read_inputs(bundle, source)
    actors = max(1, int(cluster_cpus_gpus()[0]) - 1)  # one CPU is left to the decoding tasks
    echo(f"predicting {source} with {bundle.job.model.name} on up to {actors} actor(s)")
    scored = ds.map_batches(
        Predictor,
        fn_constructor_kwargs={"bundle_dir": str(Path(bundle_path).resolve()), "public_key": public_key},
        fn_kwargs={"layout": layout},
        batch_format="numpy", batch_size=BATCH, num_cpus=1,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
    )
    batches = list(scored.iter_batches(batch_format="pyarrow", batch_size=None))
    table = pa.concat_tables(batches).combine_chunks() if batches else None
    if table is None:
        raise SourceError(f"{source}: no inputs")
    bad = pc.not_equal(table.column("reason"), "")
    predictions = table.filter(pc.invert(bad)).drop_columns(["reason"])
    quarantine = table.filter(bad).select(["id", "reason"])
    if not any(predictions.column("label").to_pylist()):  # unlabelled inputs: no label column
        predictions = predictions.drop_columns(["label"])
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(predictions, out)
    pq.write_table(quarantine, quarantine_path(out))
    return len(predictions), len(quarantine)


def quarantine_path(out: Path) -> Path:
    """Where predict writes the inputs it could not score: beside `out`, same schema as collect's."""
    return out.with_name(f"{out.stem}.quarantine.parquet")


def explain_inputs(bundle_path: Path, source: Path, out: Path, limit: int, address: str | None = None,
                   public_key: str | None = None) -> int:
    """Attribution maps for the first `limit` readable inputs of `source`: out/attributions.png and .npz."""
    bundle = load_bundle(bundle_path, public_key)
    start_ray(address)
    ds, layout = read_inputs(bundle, source)
    rows = ds.filter(lambda row: row["reason"] == "").take(limit)
    if not rows:
        raise SourceError(f"{source}: no readable inputs to explain")
    samples = normalize(decode_samples([row["x"] for row in rows], layout), bundle.stats)
    out.mkdir(parents=True, exist_ok=True)
    truth = [row["label"] for row in rows] if all(row["label"] for row in rows) else None
    attributions = explain_samples(bundle.model, samples, bundle.classes, out / "attributions.png", truth)
    np.savez(out / "attributions.npz", ids=np.array([row["id"] for row in rows]), inputs=samples,
             attributions=attributions)
    return len(rows)
