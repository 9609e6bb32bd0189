"""Tracking: TensorBoard event files of every run; MLflow (spec as params, curves, test metrics, the bundle)."""

import json
import struct

import pytest
from augtrain.artifacts.tracking import log_run
from augtrain.config.spec import load_job
from mlflow.tracking import MlflowClient


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


def test_a_tracking_store_that_fails_is_told_and_the_finished_run_kept(finished_run, tmp_path, monkeypatch):
    """The run's outputs are all written before MLflow is asked; its failure is one warning line, and the run
    is finished (a re-run would otherwise train it again from scratch)."""
    from augtrain.recipes.run import run_job

    (tmp_path / "taken").write_text("a file where MLflow's file store would be a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "taken").as_uri())
    lines = []
    run_dir = run_job(load_job(finished_run / "spec.yaml", [f"run.storage_path={tmp_path / 'runs'}", "run.mlflow=true"]),
                      echo=lines.append)
    assert [line for line in lines if line.startswith("warning: ")] == [
        next(line for line in lines if line.startswith("warning: the run was not logged to MLflow: "))]
    assert (run_dir / "report.html").is_file() and (run_dir / "model" / "manifest.json").is_file()


def read_scalars(folder):
    """(tag, step, value) of every scalar in the TensorBoard event files under `folder` (TFRecord framing)."""
    from tensorboardX.proto import event_pb2

    scalars = []
    for file in sorted(folder.glob("events.out.tfevents.*")):
        data, at = file.read_bytes(), 0
        while at < len(data):
            length = struct.unpack("<Q", data[at : at + 8])[0]
            event = event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
            scalars += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
            at += 12 + length + 4
    return scalars


def test_every_run_writes_tensorboard_curves(finished_run):
    history = json.loads((finished_run / "metrics.json").read_text())["history"]
    scalars = read_scalars(finished_run / "tensorboard")
    curve = sorted((step, value) for tag, step, value in scalars if tag == "val_accuracy")
    assert curve == [(h["epoch"] + 1, pytest.approx(h["val_accuracy"], abs=1e-6)) for h in history]
    assert {tag for tag, _, _ in scalars} == {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"}
