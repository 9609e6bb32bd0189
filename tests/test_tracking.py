"""MLflow tracking of a finished run: spec as params, per-epoch curves, test metrics, the bundle."""

import json

import pytest
from mlflow.tracking import MlflowClient

from augtrain.spec import load_job
from augtrain.tracking import log_run


def test_a_run_is_logged_to_a_local_mlflow_file_store(finished_run, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    job = load_job(finished_run / "spec.yaml", [f"run.storage_path={tmp_path}"])
    metrics = json.loads((finished_run / "metrics.json").read_text())
    run_id = log_run(finished_run, job, metrics)

    client = MlflowClient((tmp_path / "mlruns").as_uri())
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == finished_run.name
    assert client.get_experiment(run.info.experiment_id).name == job.run.name
    assert run.data.params["train.lr"] == str(job.train.lr) and run.data.params["model.name"] == "cnn"
    assert run.data.params["augment.0.name"] == job.augment[0].name
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    curve = client.get_metric_history(run_id, "val_accuracy")
    assert [(m.step, m.value) for m in curve] == [(h["epoch"] + 1, pytest.approx(h["val_accuracy"])) for h in metrics["history"]]
    artifacts = {a.path for a in client.list_artifacts(run_id)} | {a.path for a in client.list_artifacts(run_id, "model")}
    assert {"metrics.json", "spec.yaml", "model/model.safetensors", "model/manifest.json"} <= artifacts
