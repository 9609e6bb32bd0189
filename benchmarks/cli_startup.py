"""Issue 24, goal 6: the command line answers at once.

Each command runs as a fresh process, as a user types it, REPEATS times, alternated with a bare `python -c
pass` (the interpreter's own start, the floor any command pays): `augtrain --help`; `augtrain validate` of the
main job (an image job: albumentations checks its augmentation) and of a sequence job; shell completion (bash,
as typer's completion script asks for it); and `augtrain list` / `augtrain status JOB` against a local Ray
head started for the benchmark (`ray start --head`, token authentication, loopback), which the commands reach
as they would a cluster's forwarded dashboard. Goal: each command's median wall time <= 0.5 s.

    cd benchmarks && PYTHONPATH=. python cli_startup.py      # about 2 minutes on 2 CPUs
"""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import at_most, record, repeated

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 7
GOAL = at_most(0.5)
TOKEN = "augtrain-benchmark-token"
DASHBOARD = 48275
PORTS = ["--port=46479", f"--dashboard-port={DASHBOARD}", "--node-manager-port=46480", "--object-manager-port=46481",
         "--ray-client-server-port=46482", "--dashboard-agent-listen-port=46483", "--dashboard-agent-grpc-port=46484",
         "--runtime-env-agent-port=46485", "--metrics-export-port=46486", "--min-worker-port=46500",
         "--max-worker-port=46599"]
ADDRESS = f"http://127.0.0.1:{DASHBOARD}"
AUGTRAIN = [str(Path(sys.executable).with_name("augtrain"))]  # the console script, as a user types it
COMMANDS = {
    "help": (AUGTRAIN + ["--help"], {}),
    "validate_image_job": (AUGTRAIN + ["validate", "jobs/digits_cnn.yaml"], {}),
    "validate_sequence_job": (AUGTRAIN + ["validate", "jobs/gunpoint_lstm.yaml"], {}),
    # what typer's bash completion script runs at every Tab: `augtrain va<Tab>`
    "completion": (AUGTRAIN, {"_AUGTRAIN_COMPLETE": "complete_bash", "COMP_WORDS": "augtrain va", "COMP_CWORD": "1"}),
    "list": (AUGTRAIN + ["list", "--address", ADDRESS], {}),
    "status": (AUGTRAIN + ["status", "raysubmit_none", "--address", ADDRESS], {}),
}


def environment(**extra: str) -> dict:
    """This environment without Ray's settings, the token for the head, augtrain from this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, "RAY_AUTH_TOKEN": TOKEN, "PYTHONPATH": str(ROOT / "platform"), **extra}


def answers() -> bool:
    request = urllib.request.Request(f"{ADDRESS}/api/version", headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def head():
    """A Ray head on loopback with token authentication, stopped (its process group) on the way out."""
    with tempfile.TemporaryDirectory() as temp:
        command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--num-cpus=1",
                   "--dashboard-host=127.0.0.1", f"--temp-dir={temp}", "--disable-usage-stats", *PORTS]
        log = Path(temp) / "head.log"
        with log.open("w") as out:
            process = subprocess.Popen(command, env=environment(RAY_AUTH_MODE="token"), stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + 180
            while "Ray runtime started" not in log.read_text() or not answers():
                if process.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"the Ray head did not start:\n{log.read_text()[-2000:]}")
                time.sleep(1)
            yield
        finally:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def timed(command: list[str], env: dict) -> float:
    """Wall seconds of one run; the command must do its job (exit 0, or `status`'s one-line refusal)."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - start
    if result.returncode and "raysubmit_none" not in result.stdout:
        raise RuntimeError(f"{command} exited {result.returncode}:\n{result.stdout[-1500:]}{result.stderr[-1500:]}")
    return wall


def main() -> None:
    walls: dict[str, list[float]] = {name: [] for name in COMMANDS}
    bare: list[float] = []
    with head():
        for _ in range(REPEATS):
            for name, (command, extra) in COMMANDS.items():
                walls[name].append(timed(command, environment(**extra)))
                bare.append(timed([sys.executable, "-c", "pass"], environment()))
    floor = sorted(bare)[len(bare) // 2]
    for name, values in walls.items():
        median, text = repeated("seconds", values, GOAL)
        record(f"cli_{name}", f"{text}; `augtrain {' '.join(COMMANDS[name][0][1:]) or 'va<Tab>'}` as a fresh process, "
               f"{REPEATS} runs alternated with a bare `python -c pass`, whose median is {floor:.2f} s)", GOAL, median)


if __name__ == "__main__":
    main()
