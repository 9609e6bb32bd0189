"""Run: one job end to end: collect -> plan -> stream -> train -> evaluate, into one run dir."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Callable

import ray

from augtrain.collect import collect
from augtrain.evaluate import predict_logits, test_metrics, write_metrics
from augtrain.models import build_model
from augtrain.normalize import channel_stats
from augtrain.plan import plan_resources
from augtrain.spec import Job, dump_job
from augtrain.stream import split_dataset
from augtrain.train import SCORE, fit, load_weights, read_history


def start_ray(address: str | None = None) -> None:
    """Attach to `address` (or RAY_ADDRESS); with neither, start an embedded local Ray."""
    context = ray.data.DataContext.get_current()
    # Ray 2.60's DataSource V2 lists files in a task that always asks for a whole CPU, which the
    # planned data share can leave unfilled forever: read Parquet with the V1 reader.
    context.use_datasource_v2 = False
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # Workers print one line per epoch; without these, Ray Train logs each print twice and Ray
    # Data logs every epoch's execution plan.
    quiet = {"env_vars": {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0", "RAY_DATA_LOG_LEVEL": "WARNING"}}
    logs = ray.LoggingConfig(log_level="WARNING")
    if address:
        ray.init(address=address, runtime_env=quiet, logging_config=logs)
    else:
        ray.init(dashboard_host="127.0.0.1", runtime_env=quiet, logging_config=logs)


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


def run_job(job: Job, address: str | None = None, echo: Callable[[str], None] = print) -> Path:
    """Run `job`; return its run dir, which holds spec.yaml, checkpoints and metrics.json."""
    collected = collect(job.data)
    manifest = collected.manifest
    echo(f"dataset {collected.path} ({manifest['hash'][:12]}{', already collected' if collected.skipped else ''})")
    start_ray(address)
    resources = ray.cluster_resources()
    plan = plan_resources(job.scaling, resources.get("CPU", 0), resources.get("GPU", 0))
    echo(plan.describe())

    run_dir = new_run_dir(job)
    (run_dir / "spec.yaml").write_text(dump_job(job))
    stats = channel_stats(collected.path, manifest)
    (run_dir / "normalization.json").write_text(json.dumps(stats))
    transforms = [t.model_dump() for t in job.augment]
    datasets = {
        "train": split_dataset(collected.path, manifest, stats, "train", plan, transforms),
        # val never changes: prepare it once instead of re-reading it every epoch
        "val": split_dataset(collected.path, manifest, stats, "val", plan).materialize(),
    }
    result = fit(job, manifest, plan, datasets, run_dir)
    if result.error:
        raise result.error

    # evaluate the best checkpoint (by validation accuracy) on the test split
    best, best_metrics = max(result.best_checkpoints, key=lambda pair: pair[1][SCORE])
    model = build_model(job.model.name, job.model.params, manifest["shape"], len(manifest["classes"]))
    with best.as_directory() as folder:
        load_weights(model, folder)
    with result.checkpoint.as_directory() as folder:
        history = read_history(folder)
    logits, labels = predict_logits(model, split_dataset(collected.path, manifest, stats, "test", plan))
    metrics = {
        "test": test_metrics(labels, logits.argmax(1), manifest["classes"]),
        "best_epoch": best_metrics["epoch"],
        "best_checkpoint": best.path,
        "dataset": {"path": str(collected.path.resolve()), "hash": manifest["hash"]},
        "history": history,
    }
    write_metrics(run_dir, metrics)
    return run_dir
