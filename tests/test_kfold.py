"""K-fold cross-validation: stratified, seeded folds of train+val; K real Ray Train runs; mean ± std."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from augtrain.cli import app
from augtrain.config.spec import Data, SpecError, load_job
from augtrain.datasets.collect import collect
from augtrain.datasets.format import split_files
from augtrain.datasets.stream import CollectedData
from augtrain.recipes.kfold import SCORES, assign_folds
from conftest import JOBS_DIR
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner


def test_folds_partition_train_and_val_stratified_and_seeded(tmp_path):
    collected = collect(Data(source="sklearn-digits"), tmp_path / "digits")
    data = CollectedData(collected.path, collected.manifest, {})
    folds = assign_folds(data, 5, seed=0)
    pool = sum(collected.manifest["counts"][split][c] for split in ("train", "val") for c in collected.manifest["classes"])
    held_out = np.concatenate([val for _, val in folds])
    assert len(held_out) == len(set(held_out)) == pool  # every train+val sample validates exactly once
    for train, val in folds:
        assert not set(train) & set(val) and len(train) + len(val) == pool
    # stratified: each fold holds each class's train+val samples in equal shares (within one)
    table = pq.ParquetDataset([f for s in ("train", "val") for f in split_files(collected.path, s)]).read()
    label = dict(zip(table.column("id").to_pylist(), table.column("y").to_pylist()))
    per_class = np.bincount(list(label.values()))
    for _, val in folds:
        assert (np.abs(np.bincount([label[i] for i in val], minlength=10) - per_class / 5) < 1).all()
    again = assign_folds(data, 5, seed=0)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))
    other = assign_folds(data, 5, seed=1)
    assert any(set(a[1]) != set(b[1]) for a, b in zip(folds, other))


def test_too_many_folds_for_a_rare_class_is_refused(tmp_path):
    collected = collect(Data(source="ucr:GunPoint"), tmp_path / "gunpoint")
    data = CollectedData(collected.path, collected.manifest, {})
    with pytest.raises(SpecError, match=r"eval.kfold: 30 folds need 30 train\+val samples of every class"):
        assign_folds(data, 30, seed=0)


def test_kfold_cannot_be_combined_with_a_sweep():
    with pytest.raises(SpecError, match="eval.kfold: a sweep is not cross-validated"):
        load_job(JOBS_DIR / "digits_cnn_tune.yaml", ["eval.kfold=3"])


@pytest.mark.parametrize("job_file, k", [("digits_cnn.yaml", 2), ("gunpoint_fcn.yaml", 2)])
def test_kfold_run_reports_mean_and_std_over_real_folds(ray_session, tmp_path, job_file, k):
    overrides = [f"run.storage_path={tmp_path / 'runs'}", f"data.path={tmp_path / 'data'}", "train.epochs=2",
                 f"eval.kfold={k}", "run.mlflow=true"]
    result = CliRunner().invoke(app, ["run", str(JOBS_DIR / job_file), *overrides])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / load_job(JOBS_DIR / job_file).run.name
    (run_dir,) = run_dir.iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    kfold = metrics["kfold"]
    assert kfold["k"] == k and [f["fold"] for f in kfold["folds"]] == list(range(k))
    for name in SCORES:
        values = [f[name] for f in kfold["folds"]]
        assert kfold["mean"][name] == pytest.approx(np.mean(values))
        assert kfold["std"][name] == pytest.approx(np.std(values))
    assert all(0 <= f["test_accuracy"] <= 1 and 0 <= f["val_accuracy"] <= 1 for f in kfold["folds"])
    # K separate Ray Train runs, each with its own checkpoints and 2 epochs of history
    assert sorted(p.name for p in (run_dir / "folds").iterdir()) == [f"fold-{i}" for i in range(k)]
    # the run's model is the fold with the best validation score, scored on the same test split
    best = kfold["folds"][metrics["selected_fold"]]
    assert metrics["test"]["accuracy"] == pytest.approx(best["test_accuracy"])
    assert best["val_accuracy"] == max(f["val_accuracy"] for f in kfold["folds"])
    assert (run_dir / "model" / "manifest.json").is_file() and len(metrics["history"]) == 2
    assert f"{k}-fold: val_accuracy {kfold['mean']['val_accuracy']:.4f} ± {kfold['std']['val_accuracy']:.4f}" in result.output
    # run.mlflow: the same summary is in the local MLflow file store
    client = MlflowClient((tmp_path / "runs" / "mlruns").as_uri())
    (logged,) = client.search_runs([client.get_experiment_by_name(load_job(JOBS_DIR / job_file).run.name).experiment_id])
    assert logged.data.metrics["kfold_mean_test_accuracy"] == pytest.approx(kfold["mean"]["test_accuracy"])
