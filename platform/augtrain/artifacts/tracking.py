"""Tracking: a finished run's spec, per-epoch curves, test metrics and files logged to MLflow (`run.mlflow`)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from augtrain.config.spec import Job, flatten
from augtrain.datasets.storage import is_uri


def log_run(run_dir: Path, job: Job, metrics: dict) -> str:
    """Log the run to MLFLOW_TRACKING_URI, or by default to a local file store at <storage_path>/mlruns
    (for a URI storage_path: in the run dir, which is copied there with the run).

    MLflow 3 keeps the file store in maintenance mode behind an opt-in; augtrain opts in for its
    default only, so a local run needs no database or server. Returns the MLflow run id.
    """
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    store = run_dir if is_uri(job.run.storage_path) else Path(job.run.storage_path)
    uri = os.environ.get("MLFLOW_TRACKING_URI") or (store.resolve() / "mlruns").as_uri()
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(job.run.name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(job.run.name)
    run_id = client.create_run(experiment_id, run_name=run_dir.name, tags={"augtrain.run_dir": str(run_dir)}).info.run_id
    now = int(time.time() * 1000)
    curves = [Metric(name, value, now, epoch["epoch"] + 1)
              for epoch in metrics.get("history", []) for name, value in epoch.items() if name != "epoch"]
    test = [Metric(f"test_{name}", metrics["test"][name], now, 0) for name in ("accuracy", "macro_f1")]
    kfold = metrics.get("kfold", {})
    folds = [Metric(f"kfold_{stat}_{name}", value, now, 0)
             for stat in ("mean", "std") for name, value in kfold.get(stat, {}).items()]
    params = [Param(path, str(value)[:6000]) for path, value in flatten(job.model_dump(mode="json"))]
    # MLflow takes at most 100 params or 1000 metrics per batch
    for start in range(0, len(params), 100):
        client.log_batch(run_id, params=params[start : start + 100])
    points = curves + test + folds
    for start in range(0, len(points), 1000):
        client.log_batch(run_id, metrics=points[start : start + 1000])
    for name in ("report.html", "metrics.json", "confusion_matrix.png", "spec.yaml"):
        if (run_dir / name).is_file():
            client.log_artifact(run_id, str(run_dir / name))
    client.log_artifacts(run_id, str(run_dir / "model"), "model")
    client.set_terminated(run_id)
    return run_id
