"""Sweeps: search-space validation without Ray, then real sweeps on the shared local Ray."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from augtrain.config.spec import SpecError, Tune, load_job, parse_job
from augtrain.recipes.tune import _scheduler, search_space
from conftest import loaded_by_import

ROOT = Path(__file__).resolve().parents[1]
TUNE_JOB = ROOT / "jobs" / "digits_cnn_tune.yaml"


def with_tune(**tune):
    return {"data": {"source": "sklearn-digits"}, "tune": tune}


@pytest.mark.parametrize(
    "space, problem",
    [
        ({"train.lr": {"lognormal": [1e-4, 1e-1]}}, "train.lr: expected one of ['choice', 'grid', 'loguniform', 'randint', 'uniform']"),
        ({"train.lr": {"loguniform": [0.1, 0.001]}}, "train.lr: loguniform needs [low, high] numbers with low < high"),
        ({"train.lr": {"loguniform": [0, 0.1]}}, "train.lr: loguniform needs low > 0"),
        ({"train.batch_size": {"randint": [8.5, 64]}}, "train.batch_size: randint needs integer bounds"),
        ({"train.batch_size": {"choice": []}}, "train.batch_size: choice needs at least one value"),
        ({"train.learning_rate": {"choice": [0.1]}}, "tune.space: unknown field 'train.learning_rate'"),
        ({"train.batch_size": {"choice": [32, 0]}}, "tune.space.train.batch_size: 0 is not valid: train.batch_size: Input should be greater than or equal to 1"),
        ({"train.optimizer": {"grid": ["adam", "lion"]}}, "tune.space.train.optimizer: 'lion' is not valid"),
        ({"data.resize": {"choice": [[8, 8], [16, 16]]}}, "tune.space: data.resize: a sweep collects its data, plans"),
        # set once for the sweep: each trial would run with the base job's value while its spec said otherwise
        ({"eval.kfold": {"choice": [3, 5]}}, "tune.space: eval.kfold: a sweep collects its data, plans its workers"),
        ({"scaling.workers": {"choice": [1, 2]}}, "tune.space: scaling.workers: a sweep"),
        ({"model.init_from": {"choice": ["runs/a", "runs/b"]}}, "tune.space: model.init_from: a sweep"),
        ({}, "empty search space"),
    ],
)
def test_bad_search_spaces_are_refused_before_ray(space, problem):
    with pytest.raises(SpecError) as caught:
        parse_job(with_tune(space=space))
    assert problem in str(caught.value)


def test_a_sweep_s_mode_follows_its_metric_and_asha_s_horizon_its_longest_trial():
    space = {"train.lr": {"choice": [1e-3, 1e-2]}}
    assert parse_job(with_tune(space=space, metric="val_loss")).tune.mode == "min"
    assert parse_job(with_tune(space=space)).tune.mode == "max"
    # as written when given (an earlier sweep's bundle holds its spec, with the old default max)
    assert parse_job(with_tune(space=space, metric="val_loss", mode="max")).tune.mode == "max"
    with pytest.raises(SpecError, match=r"grace_period: 40 epochs, more than a trial trains \(30\)"):
        parse_job(with_tune(space=space, scheduler={"grace_period": 40}))
    longer = parse_job(with_tune(space={"train.epochs": {"choice": [10, 50]}}, scheduler={"grace_period": 40}))
    assert longer.most_epochs() == 50 and _scheduler(longer)._max_t == 50  # a 50-epoch trial is not cut at 30


def test_search_space_maps_to_tune_domains():
    job = parse_job(with_tune(space={"train.lr": {"loguniform": [1e-4, 1e-1]}, "model.params.dropout": {"uniform": [0, 0.5]}}))
    space = search_space(job)
    assert space["train.lr"].lower == 1e-4 and space["train.lr"].upper == 1e-1
    with pytest.raises(SpecError, match="search: grid needs grid or choice values, not loguniform"):
        search_space(parse_job({**with_tune(space={"train.lr": {"loguniform": [1e-4, 1e-1]}}), "tune": {"space": {"train.lr": {"loguniform": [1e-4, 1e-1]}}, "search": "grid"}}))
    grid = search_space(parse_job(with_tune(space={"train.batch_size": {"choice": [16, 32]}}, search="grid")))
    assert grid["train.batch_size"] == {"grid_search": [16, 32]}


def test_the_shipped_tune_job_is_a_16_point_grid_with_asha():
    job = load_job(TUNE_JOB)
    assert job.tune.search == "grid" and job.tune.scheduler.name == "asha"
    assert len(job.tune.space["train.lr"]["grid"]) * len(job.tune.space["train.batch_size"]["grid"]) == 16


def read_trials(run_dir):
    with (run_dir / "trials.csv").open() as rows:
        return list(csv.DictReader(rows))


def test_asha_stops_the_weak_trial_at_its_first_rung_and_lets_the_strong_one_finish(ray_session, tmp_path):
    from augtrain.recipes.tune import tune_job
    from conftest import smoke

    # two trials one after the other (the strong one first): at epoch 1 (grace period 1) the weak one's val
    # accuracy is below the median of the two, so ASHA (max_t = train.epochs) stops it there
    epochs = 3
    sweep = ["tune.space={train.lr: {grid: [0.003, 0.00001]}}", "tune.search=grid", "tune.max_concurrent=1",
             "tune.scheduler={name: asha, grace_period: 1, reduction_factor: 2}", f"train.epochs={epochs}",
             "scaling.workers=1"]
    run_dir = tune_job(load_job(TUNE_JOB, [*smoke(tmp_path), *sweep]), echo=lambda line: None)
    trials = {float(t["train.lr"]): t for t in read_trials(run_dir)}
    strong, weak = trials[0.003], trials[0.00001]
    assert (strong["status"], int(strong["epochs_run"])) == ("finished", epochs)
    assert (weak["status"], int(weak["epochs_run"])) == ("stopped early", 1)
    # what Ray Tune recorded for each trial (one result.json line a reported epoch), not only augtrain's summary
    reported = {}
    for results in (run_dir / "tune").glob("*/result.json"):
        lines = [json.loads(line) for line in results.read_text().splitlines()]
        reported[lines[-1]["config"]["train.lr"]] = [line["training_iteration"] for line in lines]
    assert reported == {0.003: list(range(1, epochs + 1)), 0.00001: [1]}
    assert json.loads((run_dir / "metrics.json").read_text())["best_trial"] == strong["trial"]


def test_a_sweep_s_report_shows_the_data_card_it_drew_while_its_trials_trained(ray_session, tmp_path):
    """The sweep's driver draws the report's data card on a thread while it waits on the trials
    (recipes/tune.drawing_card): the same sample grids, raw and augmented, as drawn again afterwards."""
    from augtrain.artifacts.report import write_report
    from augtrain.recipes.tune import tune_job
    from conftest import smoke

    sweep = ["tune.space={train.lr: {grid: [0.003]}}", "tune.search=grid", "tune.scheduler.name=none", "train.epochs=1"]
    run_dir = tune_job(load_job(TUNE_JOB, [*smoke(tmp_path), *sweep]), echo=lambda line: None)
    grids = re.compile(r'<img src="([^"]*)" alt="(?:raw|augmented) training samples"')
    during = grids.findall((run_dir / "report.html").read_text())
    assert len(during) == 2
    assert grids.findall(write_report(run_dir).read_text()) == during


TUNE_JOBS = [j for j in sorted((ROOT / "jobs").glob("*.yaml")) if j.read_text().startswith("# augtrain tune ")]


def ended_trials(location: Path) -> set[str]:
    """The ids of the trials that the sweep's state, as Tune saved it at `location`, lists as ended."""
    ended = set()
    for state in location.glob("*/tune/experiment_state-*.json"):
        try:
            trials = [json.loads(trial) for trial, _ in json.loads(state.read_text())["trial_data"]]
        except json.JSONDecodeError:  # being written
            continue
        ended |= {trial["trial_id"] for trial in trials if trial["status"] == "TERMINATED"}
    return ended


def kill_after_the_first_trial(job: Path, address: str, location: Path, *overrides: str) -> dict[Path, str]:
    """Start `augtrain tune` in its own process, kill it once Tune has saved that a trial ended; that trial's
    results.

    Tune saves the sweep's state (and with it each trial's results) every 10 s or more by default: every
    second here, so that an ended trial is seen while the next ones train."""
    driver = subprocess.Popen(
        [sys.executable, "-m", "augtrain.cli", "tune", str(job), *overrides, "--address", address],
        env={**os.environ, "PYTHONPATH": str(ROOT / "platform"), "TUNE_GLOBAL_CHECKPOINT_S": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + 300
    finished = []
    while time.time() < deadline and not finished:
        ended = ended_trials(location)
        finished = [p for p in location.glob("*/tune/*/result.json")
                    if any(trial in p.parent.name for trial in ended) and len(p.read_text().splitlines()) >= 2]
        time.sleep(0.5)
    assert finished, "no trial finished before the deadline"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    return {p: p.read_text() for p in finished}


@pytest.mark.parametrize("workers", [1, 2], ids=["trials-train-in-process", "trials-on-ray-train"])
@pytest.mark.parametrize("job", TUNE_JOBS, ids=lambda p: p.name)
def test_a_killed_sweep_resumes_without_retraining_finished_trials_and_exports_the_best(ray_session, tmp_path, job, workers):
    from conftest import smoke, smoke_run

    # kept at a URI (pyarrow's file://, the code path of s3:// and gs://): trials checkpoint there; one worker
    # trains in the trial's process (training/local.py), two on a Ray Train worker group in the trial
    # three trials, one at a time: two still to train once the first has finished, so the kill lands mid-sweep
    sweep = ["tune.space={train.lr: {grid: [0.001, 0.003, 0.01]}, train.batch_size: {grid: [64]}}", "tune.search=grid",
             "tune.scheduler.name=none", f"run.storage_path=file://{tmp_path}/bucket", f"scaling.workers={workers}"]
    kept_at = tmp_path / "bucket" / job.stem
    address = ray_session.get_runtime_context().gcs_address
    done_results = kill_after_the_first_trial(job, address, kept_at, *smoke(tmp_path, *sweep))
    (kept,) = kept_at.iterdir()
    assert not (kept / "metrics.json").exists()
    done_checkpoints = {p: p.stat().st_mtime for p in kept.glob("trials/*/train/checkpoint_*")}
    # every finished trial's checkpoints are already kept (trials/<trial id>/train), so the checks below that
    # nothing was retrained look at real files
    done_trials = {json.loads(text.splitlines()[-1])["trial_id"] for text in done_results.values()}
    for trial in done_trials:
        assert list(kept.glob(f"trials/{trial}/train/checkpoint_*/model.safetensors")), f"finished trial {trial}: no checkpoint"
    assert done_checkpoints and {p.parts[-3] for p in done_checkpoints} >= done_trials

    run_dir = smoke_run(tmp_path, job, "tune", *sweep, "--resume")
    assert run_dir == kept  # the run dir named last is the sweep's place at the URI
    for path, mtime in done_checkpoints.items():  # nothing that existed was trained again
        assert path.stat().st_mtime == mtime
    for path, text in done_results.items():  # finished trials keep their results as they were
        assert path.read_text() == text
    assert len(list(kept.glob("trials/*/train/checkpoint_*/model.safetensors"))) >= 3
    assert (kept / "tune" / "tuner.pkl").is_file() and (kept / "metrics.json").is_file()
    trials = read_trials(run_dir)
    assert len(trials) == 3 and {t["status"] for t in trials} == {"finished"}
    assert done_trials <= {t["trial"] for t in trials}  # the resumed sweep kept its finished trials, not new ones
    assert {float(t["train.lr"]) for t in trials} == {0.001, 0.003, 0.01}
    assert all(int(t["epochs_run"]) == 2 for t in trials)
    best = max(trials, key=lambda t: (float(t["val_accuracy"]), -float(t["val_loss"])))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["best_trial"] == best["trial"] and metrics["tune"]["trials"] == 3
    spec = load_job(run_dir / "spec.yaml")
    assert spec.train.lr == float(best["train.lr"]) and spec.tune is None
    (checkpoint,) = (run_dir / "train").iterdir()  # the exported checkpoint is the best trial's
    assert checkpoint.name == Path(best["checkpoint"]).name
    for name in ("tune_metric.png", "learning_curves.png", "confusion_matrix.png"):
        assert (run_dir / name).stat().st_size > 0


# a trial that ended at its last epoch, or early (train.patience: at lr 1e-9 no val score improves on the
# first epoch's, so 2 stale epochs end it at its third of 6)
ENDED = {"all-epochs": ([], 1), "out-of-patience": (["train.epochs=6", "train.patience=2", "train.lr=1e-9"], 2)}


@pytest.mark.parametrize("workers, ended", [(1, "all-epochs"), (2, "all-epochs"), (1, "out-of-patience")],
                         ids=["in-process", "on-ray-train", "in-process-out-of-patience"])
def test_a_rerun_trial_whose_epochs_were_all_kept_trains_nothing_and_reports_its_last_epoch(ray_session, tmp_path, workers, ended):
    """A sweep killed after a trial's last epoch but before Tune saved that the trial ended reruns the trial:
    it finds every epoch kept in its storage, trains nothing and tells Tune its last epoch again (without a
    report of the sweep's metric Tune fails the whole sweep)."""
    from augtrain.recipes.rundir import prepare_dataset
    from augtrain.training.loop import fit, in_process
    from augtrain.training.plan import DRIVER_CPU, shared_plan
    from augtrain.training.runtime import cluster_cpus_gpus
    from conftest import smoke
    from ray import tune

    overrides, last_epoch = ENDED[ended]
    job = load_job(ROOT / "jobs" / "digits_cnn.yaml", smoke(tmp_path, f"scaling.workers={workers}", *overrides))
    data = prepare_dataset(job, None, lambda line: None)
    _, plan = shared_plan(job.scaling, 1, *cluster_cpus_gpus())
    storage = str(tmp_path / "trial")
    last = fit(job, data, plan, storage).metrics  # the trial's first life, to its end; then the sweep died
    assert last["epoch"] == last_epoch

    def checkpoint_files():
        return {p: p.stat().st_mtime_ns for p in (tmp_path / "trial" / "train").glob("checkpoint_*/**/*") if p.is_file()}

    kept = checkpoint_files()
    assert any(p.name == "model.safetensors" for p in kept)

    def rerun(config):
        fit(job, data, plan, storage, trial=Tune(space={"train.lr": {"choice": [job.train.lr]}}))

    cpus = plan.cpus_per_worker if in_process(job, plan) else DRIVER_CPU  # as tune_job asks: a trial that trains, or waits
    (result,) = tune.Tuner(tune.with_resources(rerun, {"CPU": cpus}), tune_config=tune.TuneConfig(metric="val_accuracy", mode="max"),
                           run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), verbose=0)).fit()
    assert result.error is None
    told = result.metrics_dataframe.to_dict("records")
    assert len(told) == 1 and told[0]["epoch"] == last_epoch
    assert (told[0]["val_accuracy"], told[0]["val_loss"]) == (last["val_accuracy"], last["val_loss"])
    assert Path(told[0]["checkpoint_path"]).name == max(p.name for p in (tmp_path / "trial" / "train").glob("checkpoint_*") if p.is_dir())
    assert checkpoint_files() == kept


def test_a_trial_keeps_its_checkpoints_by_the_sweep_s_metric(ray_session, tmp_path):
    """A sweep for the lowest val_loss keeps the epoch of the lowest val_loss, not of the best accuracy (it
    kept the best accuracy's whatever the metric, and ranked its trials among those)."""
    from augtrain.recipes.rundir import prepare_dataset
    from augtrain.training.loop import fit, ranking
    from augtrain.training.plan import shared_plan
    from augtrain.training.runtime import cluster_cpus_gpus
    from conftest import smoke
    from ray import tune

    job = load_job(ROOT / "jobs" / "digits_cnn.yaml", smoke(tmp_path, "train.epochs=8", "train.lr=0.003", "train.keep_checkpoints=1"))
    data = prepare_dataset(job, None, lambda line: None)
    _, plan = shared_plan(job.scaling, 1, *cluster_cpus_gpus())
    sweep = Tune(space={"train.lr": {"choice": [job.train.lr]}}, metric="val_loss")

    def trial(config):
        fit(job, data, plan, str(tmp_path / "trial"), trial=sweep)

    (result,) = tune.Tuner(tune.with_resources(trial, {"CPU": plan.cpus_per_worker}),
                           tune_config=tune.TuneConfig(metric="val_loss", mode="min"),
                           run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), verbose=0)).fit()
    history = result.metrics_dataframe.to_dict("records")
    lowest_loss = min(history, key=lambda epoch: epoch["val_loss"])["epoch"]
    assert lowest_loss != max(history, key=ranking())["epoch"]  # the two metrics disagree on this run
    kept = sorted(p.name for p in (tmp_path / "trial" / "train").glob("checkpoint_*"))
    assert kept == sorted({f"checkpoint_{lowest_loss:06d}", f"checkpoint_{history[-1]['epoch']:06d}"})


def test_a_trial_process_imports_no_sweep_reporting():
    """Each trial's process imports augtrain.recipes.trial: training's imports, not the sweep's plots and metrics."""
    assert loaded_by_import("augtrain.recipes.trial", ["matplotlib", "sklearn", "albumentations", "torchvision"]) == []


def test_a_sweep_that_tune_fails_is_named_in_one_line_by_its_error_not_its_traceback(ray_session, tmp_path, capsys):
    """Tune puts a traceback first in its error (here: a trial's report lacks the sweep's metric); the CLI's
    one line names the error itself."""
    import typer
    from augtrain.cli import _failed
    from ray import tune

    def trainable(config):
        tune.report({"loss": 1.0})

    tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(metric="val_accuracy", mode="max"),
                       run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0))
    with pytest.raises(Exception) as failed:
        tuner.fit()
    assert str(failed.value).startswith("Traceback")
    capsys.readouterr()  # what Tune printed
    with pytest.raises(typer.Exit):
        _failed("tune", failed.value)
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("error: tune failed: TuneError: ValueError: Trial returned a result which did not include")
