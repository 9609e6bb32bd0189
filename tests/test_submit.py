"""Cluster submission through the Ray Jobs API, on a real token-auth head started here; and cluster.yaml."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
import requests
import yaml
from augtrain.cli import app
from augtrain.training.runtime import start_ray
from conftest import loaded_by
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
JOB = "jobs/digits_cnn.yaml"
TOKEN = "augtrain-test-token"
DASHBOARD = 48265
NOWHERE = "http://127.0.0.1:9"  # nothing listens: a command that gets past its local checks fails to connect
# Ports away from Ray's defaults, so this head never meets the test session's embedded Ray
PORTS = [
    "--port=46379", f"--dashboard-port={DASHBOARD}", "--node-manager-port=46380", "--object-manager-port=46381",
    "--ray-client-server-port=46382", "--dashboard-agent-listen-port=46383", "--dashboard-agent-grpc-port=46384",
    "--runtime-env-agent-port=46385", "--metrics-export-port=46386", "--min-worker-port=46400",
    "--max-worker-port=46499",
]


def clean_env(home: Path, **extra: str) -> dict:
    """This environment without any Ray setting (the test session's Ray sets some), HOME without a token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, "HOME": str(home), **extra}


def augtrain(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The augtrain CLI in its own process, as a user runs it from the repo root."""
    env = clean_env(home, PYTHONPATH=str(REPO / "platform"), **env)
    command = [sys.executable, "-m", "augtrain.cli", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)


def refused(result: subprocess.CompletedProcess) -> str:
    """The output of a command that stopped with an `error:` (exit code 2), not a traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.startswith("error: ") and "Traceback" not in result.stdout + result.stderr, result.stdout
    return result.stdout


def one_error_line(result: subprocess.CompletedProcess) -> str:
    (line,) = refused(result).strip().splitlines()
    return line


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A Ray head with token auth on loopback: (dashboard address, its temp dir)."""
    temp = tmp_path_factory.mktemp("rayhead")
    # the venv's python first on PATH: job entrypoints run `python -m augtrain.cli`
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = clean_env(Path.home(), PATH=path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN)
    command = [
        str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--num-cpus=2",
        "--dashboard-host=127.0.0.1", f"--temp-dir={temp}", "--disable-usage-stats", *PORTS,
    ]
    # The session's embedded Ray gives this head the machine while it runs: on 2 loaded CPUs the
    # head's raylet was seen to time out during start-up (the dashboard answered, jobs found no agent).
    ray.shutdown()
    address = f"http://127.0.0.1:{DASHBOARD}"
    try:
        # Ray gives a new raylet a fixed 30 s to register with its GCS (ray/_private/node.py); on 2 CPUs still
        # busy with the session's Ray going away that was once too short: `ray start` exits and is run again
        for attempt in range(3):
            with open(temp / "head.log", "w") as log:
                process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.time() + 180
            # up once `ray start` says so (its node, raylet and job agent included) and the dashboard answers
            while "Ray runtime started" not in (temp / "head.log").read_text() or not _answers(address):
                if process.poll() is not None and "timed out during startup" in (temp / "head.log").read_text() and attempt < 2:
                    with contextlib.suppress(ProcessLookupError):  # the GCS it started, in its process group
                        os.killpg(process.pid, signal.SIGKILL)
                    break
                assert process.poll() is None and time.time() < deadline, (temp / "head.log").read_text()[-3000:]
                time.sleep(1)
            else:
                break
        yield address, temp
    finally:
        # `ray stop` stops every Ray on the machine; a `--block` head stops its own processes, and
        # only those, on SIGTERM, but took 30 s to do so after the jobs here: what is left of its
        # process group after 5 s is killed
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):  # the whole group already gone
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        start_ray()


def _answers(address: str) -> bool:
    try:
        return requests.get(f"{address}/api/version", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=2).ok
    except requests.ConnectionError:
        return False


def test_submit_waits_for_a_job_that_succeeds(head, tmp_path):
    address, temp = head
    storage = tmp_path / "runs"
    overrides = ["train.epochs=1", f"run.storage_path={storage}", f"data.path={tmp_path / 'data'}"]
    submitted = augtrain(tmp_path, "submit", JOB, *overrides, "--address", address, "--wait", RAY_AUTH_TOKEN=TOKEN)
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    job_id = re.search(r"^submitted (raysubmit_\w+) to ", submitted.stdout, re.M).group(1)
    assert "test accuracy" in submitted.stdout and submitted.stdout.rstrip().endswith(f"job {job_id} SUCCEEDED")
    (metrics,) = storage.glob("digits_cnn/*/metrics.json")  # written by the job, on this machine

    # the token from a file named by RAY_AUTH_TOKEN_PATH works as well
    (tmp_path / "token").write_text(TOKEN)
    by_file = {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "token")}
    status = augtrain(tmp_path, "status", job_id, "--address", address, **by_file)
    assert status.returncode == 0 and status.stdout.startswith(f"{job_id}: SUCCEEDED"), status.stdout
    logs = augtrain(tmp_path, "logs", job_id, "--address", address, **by_file)
    assert logs.returncode == 0 and "test accuracy" in logs.stdout and f"run dir: {metrics.parent}" in logs.stdout
    listed = augtrain(tmp_path, "list", "--address", address, **by_file)
    assert re.search(rf"^{job_id}  SUCCEEDED  digits_cnn  python -m augtrain.cli run {JOB} ", listed.stdout, re.M)

    # on the cluster: augtrain came as the `augtrain` package, the working dir without platform/, data or venv
    (module,) = temp.glob("session_latest/runtime_resources/py_modules_files/*/augtrain")
    assert (module / "cli.py").is_file() and (module / "artifacts" / "templates").is_dir()
    (workdir,) = temp.glob("session_latest/runtime_resources/working_dir_files/*/")
    assert (workdir / JOB).is_file()
    assert not {"platform", "data", "runs", ".venv", ".git"} & {p.name for p in workdir.iterdir()}


def test_submit_wait_exits_1_when_the_job_fails(head, tmp_path):
    address, _ = head
    # valid here, but the 2-CPU cluster cannot fit 9 workers: the job's own `augtrain run` refuses it
    overrides = ["scaling.workers=9", f"run.storage_path={tmp_path / 'runs'}", f"data.path={tmp_path / 'data'}"]
    result = augtrain(tmp_path, "submit", JOB, *overrides, "--address", address, "--wait", RAY_AUTH_TOKEN=TOKEN)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "scaling.workers=9 does not fit" in result.stdout
    assert re.search(r"^error: job raysubmit_\w+ FAILED \(exit code 2\)$", result.stdout, re.M), result.stdout


def test_stop_a_submitted_job(head, tmp_path):
    address, _ = head
    overrides = ["train.epochs=200", f"run.storage_path={tmp_path / 'runs'}", f"data.path={tmp_path / 'data'}"]
    submitted = augtrain(tmp_path, "submit", JOB, *overrides, "--address", address, RAY_AUTH_TOKEN=TOKEN)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job_id = re.search(r"^submitted (raysubmit_\w+)", submitted.stdout, re.M).group(1)
    assert f"augtrain logs {job_id} --follow" in submitted.stdout
    stopped = augtrain(tmp_path, "stop", job_id, "--address", address, RAY_AUTH_TOKEN=TOKEN)
    assert stopped.returncode == 0 and stopped.stdout.strip() == f"{job_id}: stopping", stopped.stdout
    # following a stopped job's logs ends with it
    followed = augtrain(tmp_path, "logs", job_id, "--follow", "--address", address, RAY_AUTH_TOKEN=TOKEN)
    assert followed.returncode == 0, followed.stdout + followed.stderr
    status = augtrain(tmp_path, "status", job_id, "--address", address, RAY_AUTH_TOKEN=TOKEN)
    assert status.stdout.startswith(f"{job_id}: STOPPED"), status.stdout
    unknown = augtrain(tmp_path, "status", "raysubmit_nosuchjob", "--address", address, RAY_AUTH_TOKEN=TOKEN)
    assert "raysubmit_nosuchjob does not exist" in one_error_line(unknown)


@pytest.mark.parametrize(
    "token, message",
    [
        ({}, "requires a Ray auth token; give the cluster's token in RAY_AUTH_TOKEN"),
        ({"RAY_AUTH_TOKEN": "wrong"}, "rejected the Ray auth token from RAY_AUTH_TOKEN; give"),
        ({"RAY_AUTH_TOKEN_PATH": "/no/such/token"}, "cannot read the Ray auth token from /no/such/token; give"),
    ],
    ids=["none", "wrong", "unreadable"],
)
@pytest.mark.parametrize("command", [["submit", JOB, "train.epochs=1", "--wait"], ["list"]], ids=["submit", "list"])
def test_a_command_without_the_token_is_refused_in_one_line(head, tmp_path, token, message, command):
    """`submit` goes through Ray's SDK, `list` (like status, logs, stop) through the REST API: the same refusals."""
    address, _ = head
    assert message in one_error_line(augtrain(tmp_path, *command, "--address", address, **token))


def test_status_list_logs_and_stop_answer_without_importing_ray(tmp_path):
    """They speak the Jobs REST API with the standard library (Ray's SDK costs 0.6 s to import), up to the request."""
    for command in (["status", "raysubmit_x"], ["list"], ["logs", "raysubmit_x"], ["stop", "raysubmit_x"]):
        run = f"from typer.testing import CliRunner; from augtrain.cli import app; " \
              f"out = CliRunner().invoke(app, {command + ['--address', NOWHERE]!r}).output; " \
              f"assert 'cannot reach a Ray dashboard at {NOWHERE}' in out, out"
        assert loaded_by(run, ["ray", "requests", "aiohttp"]) == [], command


def test_an_oversized_working_dir_is_refused_before_upload(tmp_path):
    project = tmp_path / "project"
    (project / "jobs").mkdir(parents=True)
    shutil.copy(REPO / JOB, project / JOB)
    (project / "images").mkdir()
    (project / "images" / "big.bin").write_bytes(os.urandom(3 * 2**20))
    (project / "notes.bin").write_bytes(os.urandom(2**20))
    (project / "data").mkdir()  # collected data: never uploaded, never counted
    (project / "data" / "huge.bin").write_bytes(os.urandom(8 * 2**20))
    # Ray's own knob for its upload limit (default 512 MiB), set low to keep the test small
    limit = {"RAY_max_grpc_message_size": str(2 * 2**20)}
    args = ["submit", str(project / JOB), "--working-dir", str(project), "--address", NOWHERE]
    line = one_error_line(augtrain(tmp_path, *args, **limit))
    assert f"{project}: 4.0 MiB to upload, over Ray's runtime_env package limit of 2.0 MiB" in line
    assert "largest: images/ 3.0 MiB, notes.bin 1.0 MiB" in line and "data" not in line.split("largest:")[1]

    # under the limit it gets as far as contacting the cluster
    (project / ".rayignore").write_text("images/\n")
    assert "cannot reach a Ray dashboard at http://127.0.0.1:9" in one_error_line(augtrain(tmp_path, *args, **limit))


@pytest.mark.parametrize(
    "args, message",
    [
        ([JOB, "train.lr=-1"], "train.lr: Input should be greater than 0"),
        (["jobs/no_such_job.yaml"], "jobs/no_such_job.yaml: no such job file"),
    ],
)
def test_a_bad_job_file_fails_before_contacting_the_cluster(tmp_path, args, message):
    # the usual spec error (every bad field on its own line)
    assert message in refused(augtrain(tmp_path, "submit", *args, "--address", NOWHERE))


def test_cluster_yaml_passes_rays_own_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    validate_config(prepare_config(config))  # what `ray up` runs first: defaults, then ray-schema.json

    types = config["available_node_types"]
    assert types[config["head_node_type"]] and {"cpu_worker", "gpu_worker"} <= set(types)
    assert all({"min_workers", "max_workers"} <= set(types[t]) for t in ("cpu_worker", "gpu_worker"))
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2 and all("RAY_AUTH_MODE=token ray start" in c for c in starts)
    assert all("RAY_num_workers_soft_limit=" in c for c in starts)  # warm data workers (see run.start_ray)
    (head,) = [c for c in config["head_start_ray_commands"] if "ray start" in c]
    assert "--dashboard-host=127.0.0.1" in head
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert any("requirements.lock" in c for c in config["setup_commands"])
    # what a node installs is pinned: no downloaded script piped into a shell, no open version range
    commands = config["setup_commands"] + config["head_setup_commands"]
    assert not [c for c in commands if re.search(r"\b(curl|wget)\b.*\|\s*(ba)?sh", c)]
    for command in commands:
        for requirement in re.findall(r"pip install -q (?:--user )?'([^']+)'", command):
            assert "==" in requirement, command


def test_the_cli_suggests_the_forwarded_loopback_dashboard():
    """The token goes with every request: only the loopback end of `ray dashboard`'s tunnel keeps it off the wire."""
    help_text = CliRunner().invoke(app, ["submit", "--help"], terminal_width=200).output
    assert "http://127.0.0.1:8265" in help_text and "HEAD:8265" not in help_text
