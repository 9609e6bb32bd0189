"""Run dirs, shared by every recipe: where a run lives, opening and closing it, and writing its outputs
(metrics, bundle, attributions, report, MLflow) once a checkpoint is chosen."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Callable

import ray

from augtrain.artifacts.bundle import export_bundle, load_bundle
from augtrain.artifacts.explain import explain_samples
from augtrain.artifacts.report import write_report
from augtrain.artifacts.tracking import log_run
from augtrain.config.spec import Job, SpecError, dump_job
from augtrain.datasets.collect import collect
from augtrain.datasets.locations import is_uri
from augtrain.datasets.normalize import SERIES
from augtrain.datasets.stats import train_stats
from augtrain.datasets.storage import (
    check_shared,
    file_names,
    join,
    publish,
    read_text,
    staging,
    subfolders,
)
from augtrain.datasets.stream import CollectedData, read_split
from augtrain.errors import clip
from augtrain.evaluation.evaluate import score_checkpoint
from augtrain.evaluation.metrics import write_metrics
from augtrain.modalities import for_model
from augtrain.modalities import modality as data_modality
from augtrain.training.checkpoint import WEIGHTS, read_history
from augtrain.training.loop import ranking
from augtrain.training.runtime import start_ray

EXPLAINED = 8  # test samples whose attribution maps every run draws for its report
FINISHED = "report.html"  # written last of a run's outputs: a run dir without it was interrupted


def prepare_dataset(job: Job, address: str | None, echo: Callable[[str], None]) -> CollectedData:
    """Start or attach to Ray, collect (once), compute (once) the normalization stats."""
    start_ray(address)
    collected = collect(job.data)
    manifest = collected.manifest
    echo(f"dataset {collected.path} ({manifest['hash'][:12]}{', already collected' if collected.skipped else ''})")
    if collected.note:
        echo(f"note: {collected.note}")
    takes = for_model(job.model.name)
    if takes != data_modality(manifest["kind"]):
        raise SpecError(f"model.name: {job.model.name!r} takes {takes.samples_name} but {collected.path} holds "
                        f"{data_modality(manifest['kind']).samples_name}")
    stats = SERIES if job.data.normalize == "series" else train_stats(collected.path, manifest)
    return CollectedData(collected.path, manifest, stats)


def runs_of(job: Job) -> str:
    """<storage_path>/<name>: the folder (or URI) holding the runs of `job`, one folder each."""
    return join(job.run.storage_path, job.run.name)


def new_run_location(job: Job) -> str:
    """<storage_path>/<name>/<timestamp> (a second run in the same second gets a suffix)."""
    base = runs_of(job)
    taken, stamp = set(subfolders(base)), time.strftime("%Y%m%d-%H%M%S")
    name, n = stamp, 1
    while name in taken:
        n += 1
        name = f"{stamp}-{n}"
    return join(base, name)


def run_location(job: Job, echo: Callable[[str], None]) -> str:
    """The newest run of `run.name` if a run of the same spec was interrupted there (resumed: no FINISHED),
    else a new one."""
    base = runs_of(job)
    for name in reversed(subfolders(base)):
        spec = read_text(join(base, name, "spec.yaml"))
        if spec is None:
            continue
        if spec == dump_job(job) and FINISHED not in file_names(join(base, name)):
            if not is_uri(base) and _held_elsewhere(Path(base, name)):
                echo(f"{join(base, name)} is still running in another process: a new run beside it")
                break
            echo(f"resuming the interrupted run {join(base, name)} from its last checkpoint")
            return join(base, name)
        break
    return new_run_location(job)


def open_run_dir(location: str) -> Path:
    """The local folder where this process writes the run kept at `location` (see augtrain.datasets.storage),
    locked for as long as this process runs it: a second run of the same job does not resume it meanwhile."""
    run_dir = staging(location)
    run_dir.mkdir(parents=True, exist_ok=True)
    run_dir = run_dir.resolve()
    if str(run_dir) not in _HELD:
        folder = os.open(run_dir, os.O_RDONLY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a sweep resumed twice at once, or a run taken since run_location looked
            os.close(folder)
            raise SpecError(f"{location}: in use by another augtrain process") from None
        except OSError:  # a filesystem without locks: the run goes on unlocked
            os.close(folder)
            return run_dir
        _HELD[str(run_dir)] = folder
    return run_dir


_HELD: dict[str, int] = {}  # run dirs this process opened -> the open folder that holds their lock


def _held_elsewhere(run_dir: Path) -> bool:
    """Whether another process holds `run_dir`'s lock (flock on the folder: gone with its process)."""
    if str(run_dir.resolve()) in _HELD:
        return False
    folder = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # a filesystem without locks: nothing to tell
        return False
    finally:
        os.close(folder)  # closing drops the shared lock taken to look
    return False


def open_run(job: Job, address: str | None, echo: Callable[[str], None]) -> tuple[CollectedData, str, Path]:
    """Collect, start Ray, and open the run's location (a re-run of an interrupted one resumes there):
    the dataset, the location (folder or URI) and the local run dir."""
    data = prepare_dataset(job, address, echo)
    location = run_location(job, echo)
    run_dir = open_run_dir(location)
    check_shared(location, data.path)
    (run_dir / "spec.yaml").write_text(dump_job(job))
    publish(run_dir, location)  # a re-run finds the spec of an interrupted run
    return data, location, run_dir


def close_run(run_dir: Path, location: str) -> Path:
    publish(run_dir, location, last=FINISHED)
    folder = _HELD.pop(str(run_dir), None)
    if folder is not None:
        os.close(folder)
    return run_dir


def evaluate_run(run_dir: Path, job: Job, data: CollectedData, checkpoint_dir: str, extra: dict,
                 echo: Callable[[str], None], card: dict | None = None) -> dict:
    """Score `checkpoint_dir` on the test split; write spec.yaml, metrics.json, the confusion matrix, the
    bundle, attributions and, last, the report (`card`: its data card drawn already, see
    recipes.tune.drawing_card); then log to MLflow if asked (a tracking server that fails is told, the run
    kept)."""
    metrics = {
        "test": score_checkpoint(job, data, checkpoint_dir),
        "dataset": {"path": str(data.path), "hash": data.manifest["hash"]},
        **extra,
    }
    (run_dir / "spec.yaml").write_text(dump_job(job))
    (run_dir / "normalization.json").write_text(json.dumps(data.stats))
    write_metrics(run_dir, metrics)
    export_bundle(run_dir, job, data.manifest, data.stats, Path(checkpoint_dir) / WEIGHTS, metrics)
    explain_test_samples(run_dir, data)
    write_report(run_dir, card)  # FINISHED: a failure before it leaves a run that a rerun resumes
    if job.run.mlflow:
        try:
            log_run(run_dir, job, metrics)
        except Exception as exc:  # noqa: BLE001 - MLflow's client raises anything its store or server does
            echo(f"warning: the run was not logged to MLflow: {type(exc).__name__}: {clip(str(exc))}")
    return metrics


def explain_test_samples(run_dir: Path, data: CollectedData) -> None:
    """RUN/explain/test_samples.png: attribution maps of the run's model for the first test samples."""
    x, y = read_split(data.path, data.manifest, data.stats, "test", EXPLAINED)
    classes = data.manifest["classes"]
    (run_dir / "explain").mkdir(exist_ok=True)
    model = load_bundle(run_dir).model
    explain_samples(data.modality, model, x, classes, run_dir / "explain" / "test_samples.png", data.stats,
                    [classes[i] for i in y])


def selected(job: Job, result: ray.train.Result) -> tuple[ray.train.Checkpoint, dict, list[dict]]:
    """The checkpoint a run is scored by (best on validation, or the last), its metrics, every epoch's metrics."""
    if job.train.select == "last":
        best, best_metrics = result.checkpoint, result.metrics
    else:
        best, best_metrics = max(result.best_checkpoints, key=lambda pair: ranking()(pair[1]))
    with result.checkpoint.as_directory() as folder:
        return best, best_metrics, read_history(folder)
