"""Explain inputs: Integrated Gradients attribution maps for the first inputs of a folder or file, read
as `augtrain predict` reads them, in this process (a few inputs: no Ray)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from augtrain.artifacts.bundle import load_bundle
from augtrain.artifacts.explain import explain_samples
from augtrain.datasets.format import decode_samples
from augtrain.datasets.sources import SourceError
from augtrain.datasets.tasks import decoded_batches
from augtrain.serving.predict import model_ready, read_inputs


def explain_inputs(bundle_path: Path, source: Path, out: Path, limit: int, public_key: str | None = None) -> int:
    """Attribution maps for the first `limit` readable inputs of `source`: out/attributions.png and .npz."""
    bundle = load_bundle(bundle_path, public_key)
    listing, layout, _ = read_inputs(bundle, source)
    rows = []
    for batch in decoded_batches(listing, limit):  # in this process: a few inputs, a few chunks decoded
        rows += [{name: batch[name][i] for name in batch} for i in np.flatnonzero(batch["reason"] == "")]
        if len(rows) >= limit:
            break
    rows = rows[:limit]
    if not rows:
        raise SourceError(f"{source}: no readable inputs to explain")
    samples = model_ready(bundle, decode_samples([row["x"] for row in rows], layout))
    out.mkdir(parents=True, exist_ok=True)
    truth = [row["label"] for row in rows] if all(row["label"] for row in rows) else None
    attributions = explain_samples(bundle.modality, bundle.model, samples, bundle.classes, out / "attributions.png",
                                   bundle.stats, truth)
    np.savez(out / "attributions.npz", ids=np.array([row["id"] for row in rows]), inputs=samples,
             attributions=attributions)
    return len(rows)
