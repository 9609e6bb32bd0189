"""K-fold cross-validation: stratified, seeded folds of train+val; K real Ray Train runs; mean ± std."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from augtrain.cli import app
from augtrain.config.spec import Data, SpecError, load_job
from augtrain.datasets.collect import collect
from augtrain.datasets.format import read_columns, read_manifest, split_files
from augtrain.datasets.stream import POOL, CollectedData, prepare
from augtrain.evaluation.metrics import predict_logits
from augtrain.recipes.kfold import SCORES, assign_folds
from augtrain.training.checkpoint import WEIGHTS, load_weights, read_history
from conftest import JOBS_DIR
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner


def test_folds_partition_train_and_val_stratified_and_seeded(ray_session, tmp_path):
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


def test_too_many_folds_for_a_rare_class_is_refused(ray_session, tmp_path):
    collected = collect(Data(source="ucr:GunPoint"), tmp_path / "gunpoint")
    data = CollectedData(collected.path, collected.manifest, {})
    with pytest.raises(SpecError, match=r"eval.kfold: 30 folds need 30 train\+val samples of every class"):
        assign_folds(data, 30, seed=0)


def test_kfold_cannot_be_combined_with_a_sweep():
    with pytest.raises(SpecError, match="eval.kfold: a sweep is not cross-validated"):
        load_job(JOBS_DIR / "digits_cnn_tune.yaml", ["eval.kfold=3"])


def pool_rows(data: CollectedData, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The train+val samples with these ids, as the model takes them (decoded and normalized as `iter_split` does)."""
    table = read_columns([f for split in POOL for f in split_files(data.path, split)], ["id", "x", "y"])
    keep = np.isin(table.column("id").to_numpy(zero_copy_only=False), ids)
    batch = prepare({"x": [x for x, kept in zip(table.column("x").to_pylist(), keep) if kept],
                     "y": table.column("y").to_numpy()[keep]}, data.manifest, data.stats, data.modality)
    return data.modality.model_input(batch["x"], data.stats), batch["y"]


def check_folds_validated_on_their_own_rows(run_dir, metrics: dict, k: int) -> None:
    """The folds the run made (its dataset, its recorded seed) hold disjoint validation rows that together are the
    whole train+val pool, and each fold trained its own model: its own folder of checkpoints, and every checkpoint
    there scores on that fold's validation rows exactly the val accuracy the fold reported for that epoch."""
    job = load_job(run_dir / "spec.yaml")
    path = metrics["dataset"]["path"]
    data = CollectedData(path, read_manifest(path), json.loads((run_dir / "normalization.json").read_text()))
    folds = assign_folds(data, k, metrics["kfold"]["seed"])
    pool = read_columns([f for split in POOL for f in split_files(path, split)], ["id"]).column("id").to_pylist()
    validated = [set(val) for _, val in folds]
    assert sum(map(len, validated)) == len(set().union(*validated)) == len(pool)  # no row validates twice
    assert set().union(*validated) == set(pool)
    weights = set()
    for i, (_, val) in enumerate(folds):
        checkpoints = sorted((run_dir / "folds" / f"fold-{i}" / "train").glob("checkpoint_*"))
        assert checkpoints, f"fold {i} kept no checkpoint"
        x, y = pool_rows(data, val)
        assert len(y) == len(val)
        for checkpoint in checkpoints:
            assert (checkpoint / WEIGHTS).stat().st_size > 0
            weights.add((checkpoint / WEIGHTS).read_bytes())
            model = data.modality.build_model(job.model.name, job.model.params, data.manifest["shape"], len(data.manifest["classes"]))
            logits, labels = predict_logits(load_weights(model, checkpoint), [(x, y)])
            reported = read_history(checkpoint)[-1]["val_accuracy"]  # this checkpoint's epoch, as the fold reported it
            assert (logits.argmax(1) == labels).mean() == pytest.approx(reported, abs=1e-9), (i, checkpoint.name)
        best = metrics["kfold"]["folds"][i]
        assert best["val_accuracy"] in [read_history(c)[-1]["val_accuracy"] for c in checkpoints]
    assert len(weights) == sum(len(list((run_dir / "folds" / f"fold-{i}" / "train").glob("checkpoint_*"))) for i in range(k))


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
    check_folds_validated_on_their_own_rows(run_dir, metrics, k)
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
