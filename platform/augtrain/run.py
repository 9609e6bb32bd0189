"""Run: one job end to end: collect -> plan -> stream -> train -> evaluate, into one run dir."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ray

from augtrain.bundle import export_bundle, load_bundle
from augtrain.collect import collect, read_manifest
from augtrain.evaluate import predict_logits, test_metrics, write_metrics
from augtrain.models import build_model, model_kind
from augtrain.normalize import SERIES, channel_stats
from augtrain.plan import Plan, plan_resources
from augtrain.sources import SourceError
from augtrain.spec import Job, Scaling, SpecError, dump_job
from augtrain.stream import configure_data, split_dataset
from augtrain.train import WEIGHTS, fit, load_weights, ranking, read_history


REPORT_POLL_S = 0.1


@dataclass(frozen=True)
class Dataset:
    """A collected dataset with its train-split normalization stats, ready to stream."""

    path: Path
    manifest: dict
    stats: dict

    def split(self, name: str, plan: Plan, transforms: list[dict] = ()) -> ray.data.Dataset:
        return split_dataset(self.path, self.manifest, self.stats, name, plan, transforms)

    def for_training(self, job: Job, plan: Plan) -> dict[str, ray.data.Dataset]:
        return {
            "train": self.split("train", plan, [t.model_dump() for t in job.augment]),
            # val never changes: prepare it once instead of re-reading it every epoch
            "val": self.split("val", plan).materialize(),
        }


def start_ray(address: str | None = None) -> None:
    """Attach to `address` (or RAY_ADDRESS); with neither, start an embedded local Ray."""
    configure_data()
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    env = {
        # Workers print one line per epoch; without these, Ray Train logs each print twice and
        # Ray Data logs every epoch's execution plan.
        "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
        "RAY_DATA_LOG_LEVEL": "WARNING",
        # The Train controller takes one report per poll, every 2 s by default, and a worker's
        # next report waits for it: every epoch cost at least 2 s (digits trains one in 0.3 s).
        "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": str(REPORT_POLL_S),
    }
    logs = ray.LoggingConfig(log_level="WARNING")
    if address:
        ray.init(address=address, runtime_env={"env_vars": env}, logging_config=logs)
    else:
        ray.init(dashboard_host="127.0.0.1", runtime_env={"env_vars": env}, logging_config=logs)


def cluster_cpus_gpus() -> tuple[float, float]:
    resources = ray.cluster_resources()
    return resources.get("CPU", 0), resources.get("GPU", 0)


def prepare_dataset(job: Job, address: str | None, echo: Callable[[str], None]) -> Dataset:
    """Collect (once), start or attach to Ray, compute (once) the normalization stats."""
    collected = collect(job.data)
    manifest = collected.manifest
    echo(f"dataset {collected.path} ({manifest['hash'][:12]}{', already collected' if collected.skipped else ''})")
    if model_kind(job.model.name) != manifest["kind"]:
        takes = model_kind(job.model.name)
        raise SpecError(f"model.name: {job.model.name!r} takes {takes}s but {collected.path} holds {manifest['kind']}s")
    start_ray(address)
    stats = SERIES if job.data.normalize == "series" else channel_stats(collected.path, manifest)
    return Dataset(collected.path.resolve(), manifest, stats)


def new_run_dir(job: Job) -> Path:
    """runs/<name>/<timestamp>/ under run.storage_path (a second run in the same second gets a suffix)."""
    base = Path(job.run.storage_path) / job.run.name
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir, n = base / stamp, 1
    while run_dir.exists():
        n += 1
        run_dir = base / f"{stamp}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir.resolve()


def evaluate_run(run_dir: Path, job: Job, data: Dataset, plan: Plan, checkpoint_dir: str, extra: dict) -> dict:
    """Score `checkpoint_dir` on the test split; write spec.yaml, metrics.json and the confusion matrix."""
    model = build_model(job.model.name, job.model.params, data.manifest["shape"], len(data.manifest["classes"]))
    load_weights(model, checkpoint_dir)
    logits, labels = predict_logits(model, data.split("test", plan))
    metrics = {
        "test": test_metrics(labels, logits.argmax(1), data.manifest["classes"]),
        "dataset": {"path": str(data.path), "hash": data.manifest["hash"]},
        **extra,
    }
    (run_dir / "spec.yaml").write_text(dump_job(job))
    (run_dir / "normalization.json").write_text(json.dumps(data.stats))
    write_metrics(run_dir, metrics)
    export_bundle(run_dir, job, data.manifest, data.stats, Path(checkpoint_dir) / WEIGHTS, metrics)
    return metrics


def reevaluate(run: Path, dataset_dir: Path | None = None, address: str | None = None) -> tuple[Path, dict]:
    """Score a run's bundle on the test split of its own dataset or of another collected one."""
    bundle = load_bundle(run)
    run = run if (run / "model").is_dir() else run.parent  # a run dir, or the bundle inside one
    if dataset_dir is None:
        dataset_dir = Path(json.loads((run / "metrics.json").read_text())["dataset"]["path"])
    manifest = read_manifest(dataset_dir)
    if manifest["shape"] != bundle.manifest["shape"] or manifest["classes"] != bundle.classes:
        raise SourceError(
            f"{dataset_dir}: samples {manifest['shape']} with classes {manifest['classes']} do not fit the "
            f"model ({bundle.manifest['shape']}, classes {bundle.classes})"
        )
    start_ray(address)
    plan = plan_resources(Scaling(), *cluster_cpus_gpus())
    logits, labels = predict_logits(bundle.model, split_dataset(dataset_dir, manifest, bundle.stats, "test", plan))
    metrics = {
        "test": test_metrics(labels, logits.argmax(1), bundle.classes),
        "dataset": {"path": str(dataset_dir), "hash": manifest["hash"]},
    }
    out = run / "evaluations" / f"{manifest['hash'][:12]}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(metrics, indent=2))
    return out, metrics


def run_job(job: Job, address: str | None = None, echo: Callable[[str], None] = print) -> Path:
    """Run `job`; return its run dir, which holds spec.yaml, checkpoints and metrics.json."""
    data = prepare_dataset(job, address, echo)
    plan = plan_resources(job.scaling, *cluster_cpus_gpus())
    echo(plan.describe())
    run_dir = new_run_dir(job)
    (run_dir / "spec.yaml").write_text(dump_job(job))
    result = fit(job, data.manifest, plan, data.for_training(job, plan), run_dir)
    if result.error:
        raise result.error

    # evaluate the selected checkpoint (best by validation accuracy, or the last) on the test split
    if job.train.select == "last":
        best, best_metrics = result.checkpoint, result.metrics
    else:
        best, best_metrics = max(result.best_checkpoints, key=lambda pair: ranking()(pair[1]))
    with result.checkpoint.as_directory() as folder:
        history = read_history(folder)
    with best.as_directory() as folder:
        extra = {"selected": job.train.select, "best_epoch": best_metrics["epoch"], "best_checkpoint": best.path,
                 "history": history}
        evaluate_run(run_dir, job, data, plan, folder, extra)
    return run_dir
