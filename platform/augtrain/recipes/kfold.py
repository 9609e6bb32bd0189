"""K-fold cross-validation: K runs over stratified folds of train+val, each scored on the test split."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import ray
from sklearn.model_selection import StratifiedKFold

from augtrain.config.spec import Job, SpecError
from augtrain.datasets.format import read_columns, split_files
from augtrain.datasets.storage import join
from augtrain.datasets.stream import POOL, CollectedData, configure_data
from augtrain.evaluation.evaluate import score_checkpoint
from augtrain.recipes.rundir import close_run, evaluate_run, open_run, selected
from augtrain.training.initial import shared_starting_weights
from augtrain.training.loop import fit, in_process, ranking
from augtrain.training.plan import DRIVER_CPU, Plan, shared_plan
from augtrain.training.runtime import cluster_cpus_gpus

SCORES = ("val_accuracy", "val_loss", "test_accuracy", "test_macro_f1")  # reported as mean ± std


def assign_folds(data: CollectedData, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train ids, validation ids) of each fold: stratified over the train+val samples, seeded."""
    files = [f for split in POOL for f in split_files(data.path, split)]
    table = read_columns(files, ["id", "y"])
    ids, labels = table.column("id").to_numpy(zero_copy_only=False), table.column("y").to_numpy()
    counts = np.bincount(labels, minlength=len(data.manifest["classes"]))
    if counts.min() < k:
        rare = int(counts.argmin())
        raise SpecError(
            f"eval.kfold: {k} folds need {k} train+val samples of every class; "
            f"class {data.manifest['classes'][rare]!r} has {counts[rare]}"
        )
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(ids, labels)
    return [(ids[train], ids[val]) for train, val in folds]


@ray.remote(num_cpus=DRIVER_CPU)
def train_fold(job: Job, data: CollectedData, plan: Plan, fold: tuple[np.ndarray, np.ndarray], storage: str,
               initial: list):
    """One fold's run (training in this task, or on Ray Train: see training.loop.in_process) from the starting
    weights (`initial`: [their object ref] or []): its selected checkpoint, that epoch's metrics, every
    epoch's metrics."""
    configure_data(progress_bars=False)
    result = fit(job, data, plan, storage, fold, initial=initial[0] if initial else None)
    checkpoint, metrics, history = selected(job, result)
    return checkpoint, metrics, history


def run_folds(job: Job, data: CollectedData, plan: Plan, folds: list, concurrent: int, location: str,
              echo: Callable[[str], None]) -> list[tuple]:
    """Every fold's train_fold result, at most `concurrent` folds training at once."""
    initial = shared_starting_weights(job, data, echo)
    running, results = {}, {}
    for i, fold in enumerate(folds):
        if len(running) == concurrent:
            (done,), _ = ray.wait(list(running), num_returns=1)
            results[running.pop(done)] = ray.get(done)
        task = train_fold.options(num_cpus=plan.cpus_per_worker if in_process(job, plan) else DRIVER_CPU)
        # the ref inside a list: passed as itself, not resolved into the task's arguments
        running[task.remote(job, data, plan, fold, join(location, "folds", f"fold-{i}"), [initial] if initial else [])] = i
    for ref, i in running.items():
        results[i] = ray.get(ref)
    return [results[i] for i in range(len(folds))]


def kfold_job(job: Job, address: str | None = None, echo: Callable[[str], None] = print) -> Path:
    """Run `job` as K-fold cross-validation (`eval.kfold`); return its run dir."""
    data, location, run_dir = open_run(job, address, echo)
    cross_validate(job, data, run_dir, location, echo)
    return close_run(run_dir, location)


def cross_validate(job: Job, data: CollectedData, run_dir: Path, location: str, echo: Callable[[str], None]) -> None:
    """Train K folds, score each on test, report mean ± std; the best fold by validation is the run's model."""
    k = job.eval.kfold
    folds = assign_folds(data, k, job.data.seed)
    concurrent, plan = shared_plan(job.scaling, k, *cluster_cpus_gpus())
    echo(f"{k}-fold cross-validation: up to {concurrent} fold(s) at a time, each: {plan.describe()}")
    results = run_folds(job, data, plan, folds, concurrent, location, echo)

    # score every fold's selected checkpoint on the (untouched) test split
    rows = []
    for i, (checkpoint, metrics, _) in enumerate(results):
        with checkpoint.as_directory() as folder:
            scores = score_checkpoint(job, data, folder)
        rows.append({"fold": i, "val_accuracy": metrics["val_accuracy"], "val_loss": metrics["val_loss"],
                     "test_accuracy": scores["accuracy"], "test_macro_f1": scores["macro_f1"],
                     "best_epoch": metrics["epoch"]})
        echo(f"fold {i + 1}/{k}: " + "  ".join(f"{name} {rows[-1][name]:.4f}" for name in SCORES))
    summary = {
        "k": k,
        "seed": job.data.seed,
        "folds": rows,
        # population std (ddof=0) over folds, as scikit-learn's cross_validate reports it
        "mean": {name: float(np.mean([r[name] for r in rows])) for name in SCORES},
        "std": {name: float(np.std([r[name] for r in rows])) for name in SCORES},
    }
    echo(f"{k}-fold: " + "  ".join(f"{n} {summary['mean'][n]:.4f} ± {summary['std'][n]:.4f}" for n in SCORES))

    best = max(range(k), key=lambda i: ranking()(results[i][1]))
    checkpoint, metrics, history = results[best]
    extra = {"selected": job.train.select, "selected_fold": best, "best_epoch": metrics["epoch"],
             "best_checkpoint": checkpoint.path, "history": history, "kfold": summary}
    with checkpoint.as_directory() as folder:
        evaluate_run(run_dir, job, data, folder, extra, echo)
