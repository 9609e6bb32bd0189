"""Run: one job end to end: collect -> plan -> stream -> train -> evaluate, into one run dir."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from augtrain.config.spec import Job
from augtrain.datasets.stream import CollectedData
from augtrain.recipes.rundir import close_run, evaluate_run, open_run, selected
from augtrain.training.initial import shared_starting_weights
from augtrain.training.loop import fit, in_process
from augtrain.training.plan import plan_resources
from augtrain.training.runtime import cluster_cpus_gpus


def run_job(job: Job, address: str | None = None, echo: Callable[[str], None] = print) -> Path:
    """Run `job`; return its run dir, which holds spec.yaml, checkpoints and metrics.json."""
    data, location, run_dir = open_run(job, address, echo)
    train_and_evaluate(job, data, run_dir, location, echo)
    return close_run(run_dir, location)


def train_and_evaluate(job: Job, data: CollectedData, run_dir: Path, location: str, echo: Callable[[str], None]) -> None:
    """Train (checkpoints under `location`), then score the selected checkpoint on the test split in `run_dir`."""
    plan = plan_resources(job.scaling, *cluster_cpus_gpus())
    echo(plan.describe() + ("; it trains in this process (run.max_failures: 0)" if in_process(job, plan) else ""))
    result = fit(job, data, plan, location, initial=shared_starting_weights(job, data, echo))
    best, best_metrics, history = selected(job, result)
    with best.as_directory() as folder:
        extra = {"selected": job.train.select, "best_epoch": best_metrics["epoch"], "best_checkpoint": best.path,
                 "history": history}
        evaluate_run(run_dir, job, data, folder, extra, echo)
