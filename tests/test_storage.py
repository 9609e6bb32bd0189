"""Runs and datasets kept at a URI (pyarrow's filesystems): datasets collected there and streamed from there,
checkpoints written there by Ray Train, the rest of a run published beside them.

A file:// URI goes through the same pyarrow code as s3:// or gs:// (no object store is reachable here).
Sweeps at a URI: tests/test_tune.py."""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from augtrain.cli import app
from augtrain.config.spec import Data, SpecError, dump_job, load_job
from augtrain.datasets.collect import collect
from augtrain.datasets.format import read_manifest, split_files
from augtrain.datasets.normalize import SERIES
from augtrain.datasets.storage import child, publish, staging
from augtrain.datasets.stream import read_split
from augtrain.recipes.rundir import open_run_dir, run_location
from conftest import JOBS_DIR
from typer.testing import CliRunner

JOB = JOBS_DIR / "digits_cnn.yaml"


def test_a_dataset_is_collected_straight_to_a_uri_and_read_back_from_there(ray_session, tmp_path):
    uri = f"file://{tmp_path}/bucket/digits"
    first = collect(Data(source="sklearn-digits", path=uri))
    assert first.path == uri and not first.skipped
    folder = tmp_path / "bucket" / "digits"
    assert json.loads((folder / "manifest.json").read_text()) == first.manifest == read_manifest(uri)
    files = split_files(uri, "train")
    assert files == [f"{uri}/{p.name}" for p in sorted(folder.glob("part-train-*.parquet"))] and files
    x, y = read_split(uri, first.manifest, SERIES, "test")
    assert len(x) == len(y) == sum(first.manifest["counts"]["test"].values())
    assert collect(Data(source="sklearn-digits", path=uri)).skipped  # the same content: kept as it is

    # a new version replaces it; the earlier one is kept beside it, as with a folder
    second = collect(Data(source="sklearn-digits", path=uri, seed=1))
    assert second.manifest["hash"] != first.manifest["hash"] and read_manifest(uri) == second.manifest
    assert read_manifest(f"{uri}@{first.manifest['hash'][:12]}") == first.manifest


def test_a_run_at_a_uri_keeps_its_checkpoints_there_and_publishes_its_files(ray_session, tmp_path):
    # the dataset too: collected to the URI, streamed by Ray Data from there
    uri = f"file://{tmp_path}/bucket/runs"
    args = [f"run.storage_path={uri}", f"data.path=file://{tmp_path}/bucket/data", "train.epochs=2"]
    result = CliRunner().invoke(app, ["run", str(JOB), *args])
    assert result.exit_code == 0, result.output
    (kept,) = (tmp_path / "bucket" / "runs" / "digits_cnn").iterdir()
    assert result.output.splitlines()[-1] == f"run dir: {uri}/digits_cnn/{kept.name}"

    # Ray Train wrote the checkpoints to the URI; the driver's files were staged locally, then copied
    assert list(kept.glob("train/checkpoint_*/model.safetensors"))
    for name in ("spec.yaml", "metrics.json", "normalization.json", "report.html", "model/model.safetensors"):
        assert (kept / name).stat().st_size > 0, name
    assert [h["epoch"] for h in json.loads((kept / "metrics.json").read_text())["history"]] == [0, 1]
    assert list((kept / "tensorboard").glob("events.out.tfevents.*"))  # rank 0 copied its events there
    assert (tmp_path / "bucket" / "data" / "stats.json").is_file()  # the channel stats cached beside the data

    # the bundle at the storage re-evaluates to the run's own test scores
    again = CliRunner().invoke(app, ["evaluate", str(kept / "model")])
    assert again.exit_code == 0, again.output
    (evaluation,) = (kept / "evaluations").iterdir()
    assert json.loads(evaluation.read_text())["test"] == json.loads((kept / "metrics.json").read_text())["test"]


def test_an_interrupted_run_at_a_uri_is_resumed_and_a_finished_one_is_not(tmp_path):
    job = load_job(JOB, [f"run.storage_path=file://{tmp_path}/runs"])
    lines = []
    first = run_location(job, lines.append)
    assert first.startswith(f"file://{tmp_path}/runs/digits_cnn/") and lines == []
    run_dir = open_run_dir(first)
    (run_dir / "spec.yaml").write_text((JOB.parent / "digits_cnn.yaml").read_text())  # another spec: not resumed
    publish(run_dir, first)
    assert run_location(job, lines.append) != first and lines == []

    (run_dir / "spec.yaml").write_text(dump_job(job))
    publish(run_dir, first)
    assert run_location(job, lines.append) == first
    assert lines == [f"resuming the interrupted run {first} from its last checkpoint"]

    # scored, but stopped before its last output (a bundle, attributions or report that failed): resumed,
    # where it used to start over and train again beside a run dir without a model
    (run_dir / "metrics.json").write_text("{}")
    publish(run_dir, first)
    assert run_location(job, lines.append) == first and len(lines) == 2

    (run_dir / "report.html").write_text("<html></html>")  # finished: a re-run starts a new run beside it
    publish(run_dir, first)
    second = run_location(job, lines.append)
    assert second != first and second.startswith(f"file://{tmp_path}/runs/digits_cnn/") and len(lines) == 2


HOLD = "import sys; from augtrain.recipes.rundir import open_run_dir; open_run_dir(sys.argv[1]); print('open', flush=True); sys.stdin.read()"


def test_a_run_still_running_in_another_process_is_not_resumed_by_a_second_run(tmp_path):
    """Two runs of one job at once: the second used to take the first's folder for an interrupted run and
    write its checkpoints, metrics and bundle into it."""
    job = load_job(JOB, [f"run.storage_path={tmp_path}/runs"])
    running = Path(run_location(job, print))
    running.mkdir(parents=True)
    (running / "spec.yaml").write_text(dump_job(job))
    other = subprocess.Popen([sys.executable, "-c", HOLD, str(running)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(JOBS_DIR.parent / "platform")})
    try:
        assert other.stdout.readline() == "open\n"
        lines = []
        assert run_location(job, lines.append) != str(running)
        assert lines == [f"{running} is still running in another process: a new run beside it"]
        with pytest.raises(SpecError, match="in use by another augtrain process"):
            open_run_dir(str(running))
    finally:
        other.communicate("")  # its stdin closed: it exits, and its lock goes with it
    lines = []
    assert run_location(job, lines.append) == str(running)
    assert lines == [f"resuming the interrupted run {running} from its last checkpoint"]


def test_an_unknown_uri_scheme_is_refused():
    with pytest.raises(SpecError, match=r"run.storage_path.*ftp://host/runs: pyarrow opens s3://"):
        load_job(JOB, ["run.storage_path=ftp://host/runs"])


def test_staging_is_private_and_a_link_planted_in_the_temp_dir_is_never_followed(ray_session, tmp_path):
    uri = f"file://{tmp_path}/bucket/data"
    # where earlier versions always staged this URI: another user of the machine plants a link there
    planted = Path(tempfile.gettempdir(), "augtrain-staging", hashlib.sha1(uri.encode()).hexdigest()[:12])
    victim = tmp_path / "victim"
    victim.mkdir()
    planted.parent.mkdir(exist_ok=True)
    planted.symlink_to(victim)
    try:
        collected = collect(Data(source="sklearn-digits", path=uri))
        run_dir = open_run_dir(f"{uri}/run-1")
    finally:
        planted.unlink()
    assert list(victim.iterdir()) == [] and read_manifest(uri) == collected.manifest
    assert run_dir.name == "run-1" and run_dir.parent.stat().st_mode & 0o777 == 0o700
    assert staging(f"{uri}/run-1") != run_dir  # unpredictable: a new folder every time
    with pytest.raises(ValueError, match="not a plain file name"):
        staging(f"{uri}/..")


def test_a_uri_s_local_staging_is_removed_when_the_process_exits(tmp_path):
    """Each run at a URI storage stages its files in a private temp folder: gone with the process, not one
    copy of every run left in the temp dir."""
    make = ("from augtrain.datasets.storage import staging; folder = staging('file:///bucket/runs/run-1');"
            "folder.mkdir(); (folder / 'metrics.json').write_text('{}'); print(folder)")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    made = subprocess.run([sys.executable, "-c", make], env=env, capture_output=True, text=True, check=True)
    folder = Path(made.stdout.strip())
    assert folder.name == "run-1" and folder.parent.parent == tmp_path and not folder.parent.exists()


@pytest.mark.parametrize("name", ["..", ".", "a/b", "", "x\0y"])
def test_a_name_from_outside_never_leaves_its_folder(tmp_path, name):
    with pytest.raises(ValueError, match="not a plain file name"):
        child(str(tmp_path), name, "trial id")
    assert child(str(tmp_path), "trial_0001") == str(tmp_path / "trial_0001")
