"""Evaluate: score weights or a bundle on a collected test split, in this process (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

from augtrain.artifacts.bundle import Bundle, load_bundle
from augtrain.config.spec import Job
from augtrain.datasets.format import dataset_version, read_manifest
from augtrain.datasets.sources import SourceError
from augtrain.datasets.stream import CollectedData, iter_split
from augtrain.evaluation.metrics import classification_metrics, predict_logits
from augtrain.modalities import for_manifest
from augtrain.training.checkpoint import load_weights


def score_checkpoint(job: Job, data: CollectedData, checkpoint_dir: str | Path) -> dict:
    """Test-split metrics of the weights in `checkpoint_dir`."""
    manifest = data.manifest
    model = data.modality.build_model(job.model.name, job.model.params, manifest["shape"], len(manifest["classes"]))
    load_weights(model, checkpoint_dir)
    logits, labels = predict_logits(model, iter_split(data.path, manifest, data.stats, "test"))
    return classification_metrics(labels, logits.argmax(1), manifest["classes"])


def run_dir_of(path: Path) -> Path:
    """The run dir of a run dir or of the bundle inside one."""
    return path if (path / "model").is_dir() else path.parent


def run_dataset(path: Path) -> str:
    """The collected dataset a run (or its bundle) was trained and tested on, by its hash: a dataset collected
    again since from a changed source is another split of other samples (`dataset_version`)."""
    metrics = run_dir_of(path) / "metrics.json"
    if not metrics.is_file():
        raise SourceError(f"{path}: no run dir around this bundle to find its dataset; pass --data")
    try:
        dataset = json.loads(metrics.read_text())["dataset"]
        location, digest = dataset["path"], dataset["hash"]
    except (ValueError, RecursionError, KeyError, TypeError):
        location = digest = None
    if not isinstance(location, str) or not isinstance(digest, str):
        raise SourceError(f"{metrics}: names no dataset (dataset.path and dataset.hash); pass --data")
    try:
        return dataset_version(location, digest)
    except SourceError as exc:
        raise SourceError(f"{exc}; pass --data") from None


def fitting_manifest(bundle: Bundle, dataset_dir: str) -> dict:
    """The manifest of a collected dataset whose samples become `bundle`'s input as its training data did:
    the same sample shape, classes and settings of the modality (a text dataset's tokenizer settings, an
    audio dataset's sample rate); SourceError otherwise."""
    manifest = read_manifest(dataset_dir)
    if manifest["shape"] != bundle.shape or manifest["classes"] != bundle.classes:
        raise SourceError(
            f"{dataset_dir}: samples {manifest['shape']} with classes {manifest['classes']} do not fit the "
            f"model ({bundle.shape}, classes {bundle.classes})"
        )
    if for_manifest(manifest) != bundle.modality:
        raise SourceError(f"{dataset_dir}: collected as {manifest['kind']} with {json.dumps(bundle.modality.binding(manifest))}, "
                          "not as the model's training data was; collect it with the run's data settings")
    return manifest


def reevaluate(run: Path, dataset_dir: str | None = None, public_key: str | None = None) -> tuple[Path, dict]:
    """Score a run's bundle on the test split of its own dataset or of another collected one."""
    bundle = load_bundle(run, public_key)
    run = run_dir_of(run)
    dataset_dir = dataset_dir or run_dataset(run)
    manifest = fitting_manifest(bundle, dataset_dir)
    logits, labels = predict_logits(bundle.model, iter_split(dataset_dir, manifest, bundle.stats, "test"))
    metrics = {
        "test": classification_metrics(labels, logits.argmax(1), bundle.classes),
        "dataset": {"path": str(dataset_dir), "hash": manifest["hash"]},
    }
    out = run / "evaluations" / f"{manifest['hash'][:12]}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(metrics, indent=2))
    return out, metrics
