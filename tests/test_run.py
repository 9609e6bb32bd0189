"""End-to-end runs on the shared local Ray: every shipped job in smoke form, and worker-failure recovery."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from augtrain.cli import app
from augtrain.config.spec import load_job
from augtrain.modalities import build_model
from augtrain.recipes.run import run_job
from augtrain.training.checkpoint import load_weights
from conftest import alive_actors, smoke
from typer.testing import CliRunner

JOBS = sorted(Path(__file__).resolve().parents[1].glob("jobs/*.yaml"))
# Sweeps run last in the session (tests/test_tune.py): after a sweep, a later Ray Train run on the
# same Ray was seen to starve for data (see the closing note of issue 4).
# A job on data a fresh clone lacks (jobs/fsdd_*.yaml: the Free Spoken Digit Dataset, prepared by
# benchmarks/fsdd.py) is validated by tests/test_spec.py; tests/test_audio.py runs audio on generated data.
RUN_JOBS = [job for job in JOBS if job.read_text().startswith("# augtrain run ")
            and not load_job(job).data.source.startswith("data/")]


@pytest.mark.parametrize("job", RUN_JOBS, ids=lambda p: p.name)
def test_every_run_job_runs_in_smoke_form(smoke_runs, job):
    smoke_runs(job.name)  # checked by smoke_run; the digits and GunPoint runs serve other tests too


def epochs(run_dir: Path) -> list[dict]:
    """A run's per-epoch metrics without the timings."""
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    return [{name: value for name, value in epoch.items() if name not in {"train_s", "val_s", "time"}} for epoch in history]


def test_a_run_repeated_with_its_seeds_repeats_every_metric_and_another_seed_does_not(finished_run):
    """One worker: the same train.seed and data.seed give the same augmentations, batches, weights, scores."""
    job = load_job(finished_run / "spec.yaml")
    again = run_job(job)
    assert again != finished_run and epochs(again) == epochs(finished_run)
    test = json.loads((finished_run / "metrics.json").read_text())["test"]
    assert json.loads((again / "metrics.json").read_text())["test"] == test
    other = run_job(load_job(finished_run / "spec.yaml", ["train.seed=1"]))
    assert epochs(other) != epochs(finished_run)
    assert [e["train_loss"] for e in epochs(other)] != [e["train_loss"] for e in epochs(finished_run)]


def test_a_stream_larger_than_its_buffer_runs_bounded_and_trains_on_the_same_batches(finished_run, monkeypatch):
    """A train stream whose epochs hold more than STREAM_BUFFER caps its object store use, its scheduling loop in a
    split coordinator; seeded, the run repeats the unbounded run's every metric."""
    from augtrain.training import loop

    ever = ("ALIVE", "DEAD", "PENDING_CREATION", "DEPENDENCIES_UNREADY", "RESTARTING")
    before = len(alive_actors("SplitCoordinator", ever))
    monkeypatch.setattr(loop, "STREAM_BUFFER", 2**16)  # the smoke run streams 64 B images x 1,437 x 2 epochs
    again = run_job(load_job(finished_run / "spec.yaml"))
    assert len(alive_actors("SplitCoordinator", ever)) == before + 1
    assert epochs(again) == epochs(finished_run)


def kill_one_worker_after_first_checkpoint(storage: Path, killed: list):
    deadline = time.time() + 240
    # the snapshot is written once Ray Train has registered a reported checkpoint
    while time.time() < deadline and not list(storage.glob("*/*/train/checkpoint_manager_snapshot.json")):
        time.sleep(0.2)
    pid = max(alive_actors("RayTrainWorker"))
    os.kill(pid, signal.SIGKILL)
    killed.append(pid)


def test_two_workers_survive_a_killed_worker(ray_session, tmp_path):
    job = load_job(JOBS[0], smoke(tmp_path, "train.epochs=4", "scaling.workers=2", "run.max_failures=1"))
    killed = []
    killer = threading.Thread(target=kill_one_worker_after_first_checkpoint, args=(tmp_path / "runs", killed))
    killer.start()
    run_dir = run_job(job)
    killer.join()
    assert killed, "no worker was killed"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = metrics["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]  # resumed, not restarted from scratch
    assert history[-1]["restarts"] == 1 and history[0]["restarts"] == 0
    assert metrics["test"]["accuracy"] > 0.5
    snapshot = json.loads((run_dir / "train" / "checkpoint_manager_snapshot.json").read_text())
    assert len(snapshot["checkpoint_results"]) == job.train.keep_checkpoints
    # the killed attempt may leave one more checkpoint that Ray never registered; all must load
    checkpoints = sorted(p for p in (run_dir / "train").glob("checkpoint_*") if p.is_dir())
    assert len(checkpoints) >= job.train.keep_checkpoints
    for folder in checkpoints:
        load_weights(build_model("cnn", job.model.params, (8, 8, 1), 10), folder)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.source=/no/such/folder"], "/no/such/folder: no such file or folder"),
        (["augment=[{name: Blurr}]"], "augment.0: unknown transform 'Blurr'"),
        (["augment=[{name: Affine, rotate: wide}]"], "augment.0: Affine: rotate"),
        (["model.name=transformer"], "model: unknown model 'transformer'"),
        (["scaling.workers=9"], "scaling.workers=9 does not fit"),
        (["model.name=lstm"], "augment.0: Affine is for images but model 'lstm' takes sequences"),
        (["model.name=lstm", "augment=[]"], "model.name: 'lstm' takes sequences but"),
    ],
)
def test_bad_input_gets_one_clear_line_and_exit_2(ray_session, tmp_path, overrides, message):
    result = CliRunner().invoke(app, ["run", str(JOBS[0]), *smoke(tmp_path), *overrides])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("metrics.json"))


def test_collect_and_validate_commands(tmp_path, digits):
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / "img" / label).mkdir(parents=True)
    Image.fromarray(digits.images[0].astype("uint8")).save(tmp_path / "img" / "a" / "0.png")
    one_class = CliRunner().invoke(app, ["collect", str(tmp_path / "img"), "--out", str(tmp_path / "o")])
    assert one_class.exit_code == 2 and "a single class ('a')" in one_class.output
    (tmp_path / "empty").mkdir()
    empty = CliRunner().invoke(app, ["collect", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert empty.exit_code == 2 and "no images found" in empty.output

    ok = CliRunner().invoke(app, ["collect", "sklearn-digits", "--out", str(tmp_path / "digits")])
    assert ok.exit_code == 0 and "train 1293 / val 144 / test 360" in ok.output
    again = CliRunner().invoke(app, ["collect", "sklearn-digits", "--out", str(tmp_path / "digits")])
    assert again.output.startswith("already collected")

    assert CliRunner().invoke(app, ["validate", str(JOBS[0]), "train.lr=0.01"]).exit_code == 0
    bad = CliRunner().invoke(app, ["validate", str(JOBS[0]), "train.lr=-1", "train.batch_size=zero"])
    assert bad.exit_code == 2
    assert "train.lr: Input should be greater than 0" in bad.output and "train.batch_size:" in bad.output
