"""Run: one job end to end: collect -> plan -> stream -> train -> evaluate, into one run dir."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Callable

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from augtrain.bundle import export_bundle, load_bundle
from augtrain.collect import collect, read_manifest
from augtrain.evaluate import predict_logits, test_metrics, write_metrics
from augtrain.explain import explain_samples
from augtrain.models import build_model, model_kind
from augtrain.normalize import SERIES, channel_stats
from augtrain.plan import PlanError, plan_resources
from augtrain.report import write_report
from augtrain.sources import SourceError
from augtrain.spec import Job, SpecError, dump_job
from augtrain.storage import is_uri, join, publish, read_text, staging, subfolders
from augtrain.stream import Dataset, configure_data, iter_split, read_split
from augtrain.tracking import log_run
from augtrain.train import WEIGHTS, fit, load_weights, ranking, read_history


REPORT_POLL_S = 0.1
# Ray kills idle worker processes beyond one per CPU after a second. Ray Data runs half-CPU tasks,
# two per CPU, so every pass (each validation, each stats or predict job) restarted the extra
# workers and paid their imports (albumentations, torch: ~3 s) again; keep two per CPU.
IDLE_WORKERS_PER_CPU = 2
EXPLAINED = 8  # test samples whose attribution maps every run draws for its report


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
        # Ray Train starts an actor per run that watches for nodes being drained (spot preemption):
        # one more process start per run, and the one node of an embedded Ray is never drained.
        env["RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"] = "0"
        ray.init(
            dashboard_host="127.0.0.1",
            runtime_env={"env_vars": env},
            logging_config=logs,
            _system_config={"num_workers_soft_limit": IDLE_WORKERS_PER_CPU * (os.cpu_count() or 1)},
        )


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
    return Dataset(collected.path, manifest, stats)


def new_run_location(job: Job) -> str:
    """<storage_path>/<name>/<timestamp> (a second run in the same second gets a suffix)."""
    base = join(job.run.storage_path, job.run.name)
    taken, stamp = set(subfolders(base)), time.strftime("%Y%m%d-%H%M%S")
    name, n = stamp, 1
    while name in taken:
        n += 1
        name = f"{stamp}-{n}"
    return join(base, name)


def run_location(job: Job, echo: Callable[[str], None]) -> str:
    """The newest run of `run.name` if a run of the same spec was interrupted there (resumed), else a new one."""
    base = join(job.run.storage_path, job.run.name)
    for name in reversed(subfolders(base)):
        spec = read_text(join(base, name, "spec.yaml"))
        if spec is None:
            continue
        if spec == dump_job(job) and read_text(join(base, name, "metrics.json")) is None:
            echo(f"resuming the interrupted run {join(base, name)} from its last checkpoint")
            return join(base, name)
        break
    return new_run_location(job)


def open_run_dir(location: str) -> Path:
    """The local folder where this process writes the run kept at `location` (see augtrain.storage)."""
    run_dir = staging(location)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir.resolve()


@ray.remote(num_cpus=0)
def _sees(path: str) -> bool:
    return os.path.exists(path)


def check_shared(*locations: str | Path) -> None:
    """On a multi-node cluster every node must see `locations` (checkpoints, datasets): a node-local path is refused."""
    nodes = [node for node in ray.nodes() if node["Alive"]]
    if len(nodes) < 2:
        return
    for folder in [Path(location) for location in locations if not is_uri(str(location))]:
        marker = folder / f".visible-{os.getpid()}-{time.time_ns()}"
        marker.touch()
        try:
            checks = [
                _sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(
                    str(marker)
                )
                for node in nodes
            ]
            blind = [node["NodeManagerAddress"] for node, seen in zip(nodes, ray.get(checks)) if not seen]
        finally:
            marker.unlink()
        if blind:
            raise PlanError(
                f"{folder} is not visible from node(s) {', '.join(blind)}: on a multi-node cluster run.storage_path "
                f"and data.path must be a shared filesystem that every node mounts at the same path"
            )


def test_scores(job: Job, data: Dataset, checkpoint_dir: str | Path) -> dict:
    """Test-split metrics of the weights in `checkpoint_dir`."""
    model = build_model(job.model.name, job.model.params, data.manifest["shape"], len(data.manifest["classes"]))
    load_weights(model, checkpoint_dir)
    logits, labels = predict_logits(model, iter_split(data.path, data.manifest, data.stats, "test"))
    return test_metrics(labels, logits.argmax(1), data.manifest["classes"])


def evaluate_run(run_dir: Path, job: Job, data: Dataset, checkpoint_dir: str, extra: dict) -> dict:
    """Score `checkpoint_dir` on the test split; write spec.yaml, metrics.json and the confusion matrix."""
    metrics = {
        "test": test_scores(job, data, checkpoint_dir),
        "dataset": {"path": str(data.path), "hash": data.manifest["hash"]},
        **extra,
    }
    (run_dir / "spec.yaml").write_text(dump_job(job))
    (run_dir / "normalization.json").write_text(json.dumps(data.stats))
    write_metrics(run_dir, metrics)
    export_bundle(run_dir, job, data.manifest, data.stats, Path(checkpoint_dir) / WEIGHTS, metrics)
    explain_test_samples(run_dir, data)
    write_report(run_dir)
    if job.run.mlflow:
        log_run(run_dir, job, metrics)
    return metrics


def explain_test_samples(run_dir: Path, data: Dataset) -> None:
    """RUN/explain/test_samples.png: attribution maps of the run's model for the first test samples."""
    x, y = read_split(data.path, data.manifest, data.stats, "test", EXPLAINED)
    classes = data.manifest["classes"]
    (run_dir / "explain").mkdir(exist_ok=True)
    model = load_bundle(run_dir).model
    explain_samples(model, x, classes, run_dir / "explain" / "test_samples.png", [classes[i] for i in y])


def selected(job: Job, result: ray.train.Result) -> tuple[ray.train.Checkpoint, dict, list[dict]]:
    """The checkpoint a run is scored by (best on validation, or the last), its metrics, every epoch's metrics."""
    if job.train.select == "last":
        best, best_metrics = result.checkpoint, result.metrics
    else:
        best, best_metrics = max(result.best_checkpoints, key=lambda pair: ranking()(pair[1]))
    with result.checkpoint.as_directory() as folder:
        return best, best_metrics, read_history(folder)


def run_dir_of(path: Path) -> Path:
    """The run dir of a run dir or of the bundle inside one."""
    return path if (path / "model").is_dir() else path.parent


def run_dataset(path: Path) -> str:
    """The collected dataset a run (or its bundle) was trained and tested on."""
    metrics = run_dir_of(path) / "metrics.json"
    if not metrics.is_file():
        raise SourceError(f"{path}: no run dir around this bundle to find its dataset; pass --data")
    try:
        dataset = json.loads(metrics.read_text())["dataset"]["path"]
    except (ValueError, RecursionError, KeyError, TypeError):
        dataset = None
    if not isinstance(dataset, str):
        raise SourceError(f"{metrics}: names no dataset (dataset.path); pass --data")
    return dataset


def reevaluate(run: Path, dataset_dir: str | None = None, public_key: str | None = None) -> tuple[Path, dict]:
    """Score a run's bundle on the test split of its own dataset or of another collected one."""
    bundle = load_bundle(run, public_key)
    run = run_dir_of(run)
    dataset_dir = dataset_dir or run_dataset(run)
    manifest = read_manifest(dataset_dir)
    if manifest["shape"] != bundle.shape or manifest["classes"] != bundle.classes:
        raise SourceError(
            f"{dataset_dir}: samples {manifest['shape']} with classes {manifest['classes']} do not fit the "
            f"model ({bundle.shape}, classes {bundle.classes})"
        )
    logits, labels = predict_logits(bundle.model, iter_split(dataset_dir, manifest, bundle.stats, "test"))
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
    location = run_location(job, echo)
    run_dir = open_run_dir(location)
    check_shared(location, data.path)
    (run_dir / "spec.yaml").write_text(dump_job(job))
    publish(run_dir, location)  # a re-run finds the spec of an interrupted run
    if job.eval.kfold:
        from augtrain.kfold import cross_validate  # builds on this module

        cross_validate(job, data, run_dir, location, echo)
    else:
        train_and_evaluate(job, data, run_dir, location, echo)
    publish(run_dir, location)
    if is_uri(location):
        echo(f"run kept at {location}")
    return run_dir


def train_and_evaluate(job: Job, data: Dataset, run_dir: Path, location: str, echo: Callable[[str], None]) -> None:
    """Train (checkpoints under `location`), then score the selected checkpoint on the test split in `run_dir`."""
    plan = plan_resources(job.scaling, *cluster_cpus_gpus())
    echo(plan.describe())
    result = fit(job, data, plan, location)
    if result.error:
        raise result.error
    best, best_metrics, history = selected(job, result)
    with best.as_directory() as folder:
        extra = {"selected": job.train.select, "best_epoch": best_metrics["epoch"], "best_checkpoint": best.path,
                 "history": history}
        evaluate_run(run_dir, job, data, folder, extra)
