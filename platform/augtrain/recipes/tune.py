"""Tune: Ray Tune sweeps over any spec field; every trial is one run, the same `fit` as `augtrain run`."""

from __future__ import annotations

import csv
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY  # noqa: E402
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler  # noqa: E402

from augtrain.artifacts.report import data_card  # noqa: E402
from augtrain.config.spec import Job, SpecError  # noqa: E402
from augtrain.datasets.storage import (  # noqa: E402
    check_shared,
    child,
    fetch,
    is_folder,
    join,
    subfolders,
)
from augtrain.datasets.stream import CollectedData  # noqa: E402
from augtrain.recipes.rundir import (  # noqa: E402
    close_run,
    evaluate_run,
    new_run_location,
    open_run_dir,
    prepare_dataset,
    runs_of,
)
from augtrain.recipes.trial import run_trial, trial_job  # noqa: E402
from augtrain.training.initial import shared_starting_weights  # noqa: E402
from augtrain.training.loop import REPORTED, in_process, ranking  # noqa: E402
from augtrain.training.plan import DRIVER_CPU, Plan, shared_plan  # noqa: E402
from augtrain.training.runtime import cluster_cpus_gpus  # noqa: E402

SAMPLERS = {
    "loguniform": lambda args: tune.loguniform(*args),
    "uniform": lambda args: tune.uniform(*args),
    "randint": lambda args: tune.randint(args[0], args[1] + 1),  # inclusive bounds, like the YAML reads
    "choice": tune.choice,
    "grid": tune.grid_search,
}
EXPERIMENT = "tune"


def search_space(job: Job) -> dict:
    """Tune's param_space from the spec; under `search: grid` every choice is enumerated too."""
    space = {}
    for path, spec in job.tune.space.items():
        (kind, args), = spec.items()
        if job.tune.search == "grid" and kind in {"loguniform", "uniform", "randint"}:
            raise SpecError(f"tune.space.{path}: search: grid needs grid or choice values, not {kind}")
        if job.tune.search == "optuna" and kind == "grid":
            raise SpecError(f"tune.space.{path}: search: optuna samples; use choice instead of grid")
        space[path] = tune.grid_search(args) if job.tune.search == "grid" else SAMPLERS[kind](args)
    return space


def _searcher(job: Job):
    if job.tune.search != "optuna":
        return None
    try:
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise SpecError("tune.search: optuna needs the optional extra: pip install 'augtrain[optuna]'") from None
    return OptunaSearch()


def _scheduler(job: Job):
    scheduler = job.tune.scheduler
    if scheduler.name == "none":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=job.most_epochs(),
        grace_period=scheduler.grace_period,
        reduction_factor=scheduler.reduction_factor,
    )


def latest_sweep(job: Job) -> str:
    """The newest run of this job that holds a Tune experiment, for --resume."""
    base = runs_of(job)
    runs = [name for name in subfolders(base) if EXPERIMENT in subfolders(join(base, name))]
    if not runs:
        raise SpecError(f"nothing to resume: no sweep under {base}")
    return join(base, runs[-1])


def tune_job(
    job: Job,
    address: str | None = None,
    echo: Callable[[str], None] = print,
    resume: bool = False,
    retry_errored: bool = False,
) -> Path:
    """Run the sweep in `job.tune`; export the best trial like `augtrain run` does; return the run dir."""
    if job.tune is None:
        raise SpecError("this job has no tune section")
    space = search_space(job)
    data = prepare_dataset(job, address, echo)
    concurrent, plan = shared_plan(job.scaling, job.tune.max_concurrent, *cluster_cpus_gpus())
    echo(f"tune: up to {concurrent} trial(s) at a time, each: {plan.describe()}")
    location = latest_sweep(job) if resume else new_run_location(job)
    run_dir = open_run_dir(location)
    check_shared(location, data.path)
    initial = shared_starting_weights(job, data, echo)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=job, data=data, plan=plan, trials=join(location, "trials"),
                             initial=[initial] if initial else []),
        {"CPU": plan.cpus_per_worker if in_process(job, plan) else DRIVER_CPU},  # a trial that trains, or waits
    )
    if resume:
        tuner = tune.Tuner.restore(
            join(location, EXPERIMENT), trainable, resume_errored=not retry_errored, restart_errored=retry_errored
        )
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=space,
            tune_config=tune.TuneConfig(
                metric=job.tune.metric,
                mode=job.tune.mode,
                num_samples=job.tune.samples,
                search_alg=_searcher(job),
                scheduler=_scheduler(job),
                max_concurrent_trials=concurrent,
                reuse_actors=True,  # a trial's process and its imports (torch: seconds) serve the next trial
            ),
            run_config=tune.RunConfig(name=EXPERIMENT, storage_path=location, verbose=1),
        )
    drawing = drawing_card(job, data)
    results = tuner.fit()
    finish_sweep(run_dir, location, job, data, plan, results, echo, drawing.result())
    return close_run(run_dir, location)


def drawing_card(job: Job, data: CollectedData) -> Future:
    """The report's data card of `job` (`data_card`), drawn on a thread of its own while the sweep's driver
    waits on its trials: about a second of matplotlib that its end no longer waits for. (Not in a run: its
    driver trains, and drawing beside it delayed the first epoch by as much.) pyplot is not thread-safe:
    take the result before anything else plots."""
    spec = job.model_dump(mode="json")
    pool = ThreadPoolExecutor(1, thread_name_prefix="data-card")
    dataset = {"path": str(data.path), "hash": data.manifest["hash"]}
    card = pool.submit(data_card, dataset, spec["augment"], spec["data"]["seed"], data.stats)
    pool.shutdown(wait=False)
    return card


def finish_sweep(run_dir: Path, location: str, job: Job, data: CollectedData, plan: Plan, results, echo,
                 card: dict) -> None:
    """trials.csv, plots, and the best trial (by the validation metric) scored on test as the run's model
    (`card`: the base job's data card, see drawing_card; redrawn if the best trial's augmentation differs)."""
    rows, histories = trial_rows(job, location, results)
    write_trials(run_dir / "trials.csv", rows)
    plot_sweep(run_dir, job, rows, histories)
    scored = [r for r in rows if r[job.tune.metric] is not None]
    if not scored:
        raise RuntimeError(f"no trial reported {job.tune.metric}; see {join(location, EXPERIMENT)}")
    best = max(scored, key=ranking(job.tune.metric, job.tune.mode))
    best_job = trial_job(job, {path: best[path] for path in job.tune.space})
    checkpoint = Path(child(str(run_dir / "train"), Path(best["checkpoint"]).name, "checkpoint name"))
    fetch(location, best["checkpoint"], checkpoint)
    echo(f"best trial {best['trial']}: {job.tune.metric} {best[job.tune.metric]:.4f} with "
         + ", ".join(f"{p}={best[p]}" for p in job.tune.space))
    extra = {"best_trial": best["trial"], "best_epoch": best["best_epoch"], "best_checkpoint": str(checkpoint),
             "history": histories[best["trial"]],
             "tune": {"metric": job.tune.metric, "mode": job.tune.mode, "trials": len(rows)}}
    same = (best_job.augment, best_job.data.seed) == (job.augment, job.data.seed)
    evaluate_run(run_dir, best_job, data, str(checkpoint), extra, echo, card if same else None)


def trial_rows(job: Job, location: str, results) -> tuple[list[dict], dict[str, list[dict]]]:
    """One row per trial: its values, best metric, epochs run, status, best checkpoint; plus its history."""
    rows, histories = [], {}
    metric = job.tune.metric
    for result in results:
        trial = result.metrics.get("trial_id") or Path(result.path).name
        frame = result.metrics_dataframe
        records = frame.to_dict("records") if frame is not None and metric in frame else []
        # one record per epoch: a trial rerun after all its epochs were kept reports its last one again
        records = list({record["epoch"]: record for record in records}.values())
        # Ray keeps the best k checkpoints by the metric alone; rank among those still on disk
        kept = [r for r in records if r.get(CHECKPOINT_PATH_KEY) and is_folder(location, r[CHECKPOINT_PATH_KEY])]
        best = max(kept, key=ranking(metric, job.tune.mode)) if kept else None
        history = [{key: record[key] for key in REPORTED} for record in records]
        histories[trial] = history
        # by the last epoch reported, not the count: a trial cut by a killed sweep resumes from its last
        # checkpoint and reports only the epochs after it
        epochs_run = max((int(record["epoch"]) + 1 for record in records), default=0)
        stopped = result.error is None and epochs_run < result.config.get("train.epochs", job.train.epochs)
        rows.append({
            "trial": trial,
            **{path: result.config.get(path) for path in job.tune.space},
            **{key: best[key] if best else None for key in dict.fromkeys([metric, "val_accuracy", "val_loss"])},
            "best_epoch": int(best["epoch"]) if best else None,
            "epochs_run": epochs_run,
            "status": "error" if result.error else "stopped early" if stopped else "finished",
            "checkpoint": best[CHECKPOINT_PATH_KEY] if best else None,
        })
    return sorted(rows, key=lambda r: r["trial"]), histories


def write_trials(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot_sweep(run_dir: Path, job: Job, rows: list[dict], histories: dict[str, list[dict]]) -> None:
    """tune_metric.png (metric against each swept field) and learning_curves.png (every trial)."""
    metric, paths = job.tune.metric, list(job.tune.space)
    scored = [r for r in rows if r[metric] is not None]
    figure, axes = plt.subplots(1, len(paths), figsize=(4 * len(paths), 3.2), squeeze=False)
    for axis, path in zip(axes[0], paths):
        axis.scatter([r[path] for r in scored], [r[metric] for r in scored])
        if "loguniform" in job.tune.space[path] or path.endswith(("lr", "batch_size")):
            axis.set_xscale("log")
        axis.set(xlabel=path, ylabel=metric)
    figure.tight_layout()
    figure.savefig(run_dir / "tune_metric.png")
    plt.close(figure)
    figure, axis = plt.subplots(figsize=(6, 4))
    for trial, history in histories.items():
        curve = [h[metric] for h in history]
        axis.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, alpha=0.7, label=trial)
    axis.set(xlabel="epoch", ylabel=metric, title=f"{len(histories)} trials")
    figure.tight_layout()
    figure.savefig(run_dir / "learning_curves.png")
    plt.close(figure)
