"""`augtrain serve` under load on loopback: batched, unbatched, and a plain FastAPI + uvicorn server.

The digits job is trained once (2 epochs) into a temporary folder; every request is JSON {"inputs": [one
base64 PNG]} of one of its test images (8x8 grey). Three servers, each a fresh process on a free loopback
port, started, loaded and stopped (SIGTERM, then wait: Serve's application and the embedded Ray end with
the process; any process of its tree still there after it ends is counted and killed) one at a time:

- batched: `augtrain serve RUN` (defaults: --max-batch-size 32, --batch-wait-ms 5; 1 Scorer replica x 1
  CPU, 1 torch thread, plus Serve's controller, proxy and ingress processes);
- unbatched: the same with `--max-batch-size 1`;
- plain: one uvicorn process running a FastAPI app that loads the same bundle (`load_bundle`, verified),
  decodes the PNG with Pillow, normalizes it as `predict` does (`model_ready`) and scores it inline on
  1 torch thread, one request at a time (no batching).

The load generator is this process: asyncio and aiohttp, keep-alive connections, CONCURRENCY clients each
sending its next request when its last one is answered, until a fixed number of requests is answered
(LEVELS); each level's clients first send one untimed request each (their connections), and each server
gets WARMUP untimed requests after it starts. Everything shares this machine's CPUs. REPEATS rounds, the
servers restarted in every round and their order rotated (batched, unbatched, plain; then unbatched, plain,
batched; ...). Rows: the median of the rounds' ratios with their spread (common.paired_ratio).

Goals: at concurrency 32, batched requests/s >= 3x unbatched; at concurrency 1, batched p50 latency
<= 1.5x the plain server's; no failed request (a status other than 200, a connection error, an answer
without a prediction) in any run, warm-ups included. INFO rows: p50, p99 and requests/s of every server at
every concurrency.

    cd benchmarks && PYTHONPATH=. python serve_load.py           # about 6 minutes on 2 CPUs
    cd benchmarks && PYTHONPATH=. python serve_load.py --smoke   # 1 round, few requests; appends no row
"""

import argparse
import asyncio
import base64
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable

import aiohttp
import numpy as np
import pyarrow.parquet as pq
from augtrain.datasets.format import decode_samples, read_manifest, split_files
from common import at_least, at_most, paired_ratio, process_tree, record, repeated
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
LEVELS = {1: 100, 8: 400, 32: 400, 64: 400}  # concurrency: timed requests
WARMUP = (8, 100)  # concurrency, untimed requests after a server starts
REPEATS = 3
SIDES = ("batched", "unbatched", "plain")
THROUGHPUT_GOAL, LATENCY_GOAL, FAILED_GOAL = at_least(3.0), at_most(1.5), at_most(0)
START_TIMEOUT_S, STOP_TIMEOUT_S, LEFTOVER_WAIT_S, REQUEST_TIMEOUT_S = 240, 60, 30, 120
JSON = {"Content-Type": "application/json"}
DESCRIBED = {"batched": "augtrain serve (--max-batch-size 32 --batch-wait-ms 5, the defaults), ",
             "unbatched": "augtrain serve --max-batch-size 1, ", "plain": "plain FastAPI + uvicorn, "}
PLAIN = """
import base64, io, json, sys
import numpy as np, torch, uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image
from augtrain.artifacts.bundle import load_bundle
from augtrain.serving.predict import model_ready
torch.set_num_threads(1)
bundle = load_bundle(sys.argv[1])
app = FastAPI()

@app.get("/healthz")
async def healthz():
    return {"status": "ok"}

@app.post("/predict")
async def predict(request: Request):
    try:
        inputs = json.loads(await request.body())["inputs"]
        x = np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(i))))[..., None] for i in inputs])
    except Exception as exc:
        return JSONResponse({"error": str(exc)[:200]}, status_code=400)
    with torch.no_grad():
        p = torch.softmax(bundle.model(torch.from_numpy(model_ready(bundle, x))), 1).numpy()
    return {"predictions": [{"input": f"inputs[{n}]", "class": bundle.classes[int(row.argmax())],
                             "probability": float(row.max()),
                             "probabilities": {c: float(v) for c, v in zip(bundle.classes, row)}}
                            for n, row in enumerate(p)]}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def identity(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from /proc, or None once it is gone: a pid seen again with another
    start time is another process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], fields[19]


def server_like() -> set[tuple[int, str]]:
    """(pid, start time) of every running process that looks like a server's or Ray's (counted, never
    killed: the ones this benchmark leaves are those new at its end)."""
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes()
        except OSError:
            continue
        if any(mark in command for mark in (b"raylet", b"gcs_server", b"ray::", b"augtrain.cli", b"plain_server.py")):
            pid = int(cmdline.parent.name)
            seen = identity(pid)
            if seen is not None and seen[0] != "Z" and pid != os.getpid():
                found.add((pid, seen[1]))
    return found


class Server:
    """A server as a fresh process in its own session (a Ctrl-C of the benchmark does not reach it: `stop`
    ends it), its output in `log`."""

    def __init__(self, command: list[str], log: Path, env: dict):
        self.log = log
        self.output = log.open("w")
        self.process = subprocess.Popen(command, stdout=self.output, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        self.tree: dict[int, str] = {}  # every process seen in its tree: pid -> start time

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def _remember_tree(self) -> None:
        for pid in process_tree(self.process.pid):
            seen = identity(pid)
            if pid != self.process.pid and seen is not None:
                self.tree.setdefault(pid, seen[1])

    def wait_ready(self, url: str, line: str | None) -> float:
        """Seconds until GET /healthz answers 200 (augtrain serve: once its replica has loaded the bundle) and
        the log has a line starting with `line` (augtrain serve's URL line: it handles SIGTERM from there on)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
        start = time.perf_counter()
        while time.perf_counter() - start < START_TIMEOUT_S:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.process.args} exited {self.process.returncode} while starting:\n"
                                   f"{self.tail()}")
            logged = line is None or any(text.startswith(line)
                                         for text in self.log.read_text(errors="replace").splitlines())
            try:
                with opener.open(f"{url}/healthz", timeout=5) as response:
                    if response.status == 200 and logged:
                        self._remember_tree()
                        return time.perf_counter() - start
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"{self.process.args}: no 200 from {url}/healthz in {START_TIMEOUT_S} s:\n{self.tail()}")

    def stop(self) -> list[str]:
        """SIGTERM, wait for the process, then for every process seen in its tree to end; those still there
        after LEFTOVER_WAIT_S are killed and returned (as `pid command`)."""
        if self.process.poll() is None:
            self._remember_tree()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.output.close()

        def alive() -> list[int]:
            return [pid for pid, started in self.tree.items()
                    if (seen := identity(pid)) is not None and seen[1] == started and seen[0] != "Z"]

        deadline = time.monotonic() + LEFTOVER_WAIT_S
        while alive() and time.monotonic() < deadline:
            time.sleep(0.25)
        leftovers = []
        for pid in alive():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
                os.kill(pid, signal.SIGKILL)
                leftovers.append(f"{pid} {command.strip()}")
            except OSError:
                pass
        return leftovers


async def level(url: str, bodies: list[bytes], concurrency: int, total: int, answers: dict, timed: bool = True) -> dict:
    """`total` requests from `concurrency` keep-alive clients, after one untimed request each: latency
    percentiles (ms), requests/s, and the failures (counted and the first few named)."""
    latencies, failures = [], []
    connector, timeout = aiohttp.TCPConnector(limit=concurrency), aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(i: int, kept: bool) -> None:
            start = time.perf_counter()
            try:
                async with session.post(f"{url}/predict", data=bodies[i % len(bodies)], headers=JSON) as response:
                    status, payload = response.status, await response.read()
                elapsed = time.perf_counter() - start
                answer = json.loads(payload)["predictions"][0]["class"] if status == 200 else None
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError, IndexError, TypeError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                return
            if status != 200 or not isinstance(answer, str):
                failures.append(f"HTTP {status}: {payload[:200]!r}")
                return
            answers.setdefault(i % len(bodies), set()).add(answer)
            if kept:
                latencies.append(elapsed)

        await asyncio.gather(*(one(n, False) for n in range(concurrency)))  # open every client's connection
        queue = iter(range(total))

        async def client() -> None:
            for i in queue:
                await one(i, timed)

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000 if latencies else (float("nan"), float("nan"))
    return {"p50": float(p50), "p99": float(p99), "rps": len(latencies) / wall, "failed": len(failures),
            "sent": total + concurrency, "errors": failures[:3]}


async def load(url: str, bodies: list[bytes], levels: dict[int, int], answers: dict) -> tuple[dict, int, int, list]:
    """WARMUP, then every level: ({concurrency: figures}, requests sent, failed, the first failures named)."""
    warm = await level(url, bodies, *WARMUP, answers, timed=False)
    figures = {c: await level(url, bodies, c, n, answers) for c, n in levels.items()}
    runs = [warm, *figures.values()]
    return (figures, sum(r["sent"] for r in runs), sum(r["failed"] for r in runs),
            [e for r in runs for e in r["errors"]][:3])


def command_for(side: str, run_dir: Path, folder: Path, port: int) -> tuple[list[str], str | None]:
    """The command that starts `side` on `port`, and the log line it prints once it serves (None: /healthz
    alone says so)."""
    if side == "plain":
        return [sys.executable, str(folder / "plain_server.py"), str(run_dir), str(port)], None
    return [sys.executable, "-m", "augtrain.cli", "serve", str(run_dir), "--port", str(port),
            *(["--max-batch-size", "1"] if side == "unbatched" else [])], "serving "


def served(side: str, run_dir: Path, folder: Path, env: dict, bodies: list[bytes], levels: dict[int, int],
           answers: dict, command_for=command_for) -> dict:
    """Start one server, load it, stop it (whatever happened): its figures, start-up time, plan and leftovers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command, ready_line = command_for(side, run_dir, folder, port)
    log = folder / f"{side}-{port}.log"
    server = Server(command, log, env)
    leftovers: list[str] = []
    try:
        start_s = server.wait_ready(url, ready_line)
        figures, sent, failed, errors = asyncio.run(load(url, bodies, levels, answers))
    finally:
        leftovers = server.stop()
        if leftovers:
            print(f"{side}: killed {len(leftovers)} process(es) left after it ended: {leftovers}", flush=True)
    plan = next((line.strip() for line in log.read_text(errors="replace").splitlines() if line.startswith("plan: ")),
                "plan: 1 uvicorn process, 1 torch thread")
    print(f"{side}: started in {start_s:.1f} s ({plan}); " + "; ".join(
        f"c={c} p50 {f['p50']:.1f} ms p99 {f['p99']:.1f} ms {f['rps']:.0f} req/s" for c, f in figures.items())
        + f"; {failed} of {sent} failed {errors}", flush=True)
    return {"figures": figures, "start_s": start_s, "plan": plan, "sent": sent, "failed": failed,
            "errors": errors, "leftovers": leftovers}


def trained(tmp: Path, env: dict) -> tuple[Path, list[bytes]]:
    """The digits job trained for 2 epochs: its run dir, and a request body for each of its test images."""
    run = subprocess.run([sys.executable, "-m", "augtrain.cli", "run", str(ROOT / "jobs" / "digits_cnn.yaml"),
                          "train.epochs=2", f"run.storage_path={tmp}/runs", f"data.path={tmp}/digits"],
                         capture_output=True, text=True, env=env)
    if run.returncode:
        raise RuntimeError(f"augtrain run failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    run_dir = Path(next(line for line in run.stdout.splitlines() if line.startswith("run dir: "))[9:])
    table = pq.ParquetDataset(split_files(tmp / "digits", "test")).read()
    images = decode_samples(table.column("x").to_pylist(), read_manifest(tmp / "digits"))
    bodies = []
    for image in images:
        png = io.BytesIO()
        Image.fromarray(image[..., 0]).save(png, format="PNG")
        bodies.append(json.dumps({"inputs": [base64.b64encode(png.getvalue()).decode()]}).encode())
    return run_dir, bodies


def server_env() -> dict:
    """The servers' environment: they import this checkout's augtrain, whatever the caller's PYTHONPATH holds."""
    return {**os.environ, "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "platform"), os.environ.get("PYTHONPATH")) if p)}


def smoke_row(name: str, result: str, goal, value: float | None = None) -> None:
    """A row printed, not appended to RESULTS.md (--smoke)."""
    verdict = "INFO" if goal is None else "PASS" if goal.met(value) else "FAIL"
    print(f"SMOKE {name} {result} goal={goal or 'none'} {verdict}", flush=True)


def options(description: str, levels: dict[int, int]) -> tuple[int, dict[int, int], Callable]:
    """The command line (--smoke or not): (rounds, {concurrency: timed requests}, how a row is given)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="1 round, a tenth of the requests; prints, appends no row")
    if parser.parse_args().smoke:
        return 1, {c: max(c, n // 10) for c, n in levels.items()}, smoke_row
    return REPEATS, levels, record


class Rounds(dict):
    """{side: its figures, one server's per round}: every side served (`serve(side)`) `repeats` times, the
    order rotated every round."""

    def __init__(self, sides: tuple[str, ...], repeats: int, serve: Callable[[str], dict]):
        super().__init__({side: [] for side in sides})
        for n in range(repeats):
            for side in sides[n % len(sides):] + sides[:n % len(sides)]:
                self[side].append(serve(side))

    def figure(self, side: str, concurrency: int, key: str) -> list[float]:
        return [r["figures"][concurrency][key] for r in self[side]]

    def median(self, side: str, concurrency: int, key: str) -> float:
        return statistics.median(self.figure(side, concurrency, key))


def main() -> None:
    repeats, levels, emit = options(__doc__.splitlines()[0], LEVELS)
    began = time.perf_counter()
    env = server_env()
    answers: dict[int, set] = {}
    before = server_like()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "plain_server.py").write_text(PLAIN)
        run_dir, bodies = trained(tmp, env)
        print(f"trained {run_dir} in {time.perf_counter() - began:.0f} s; {len(bodies)} test images", flush=True)
        rounds = Rounds(SIDES, repeats, lambda side: served(side, run_dir, tmp, env, bodies, levels, answers))
    wall = time.perf_counter() - began
    remaining = server_like() - before
    figure, median = rounds.figure, rounds.median
    cpus = os.cpu_count()
    plan = rounds["batched"][0]["plan"].removeprefix("plan: ")
    setup = (f"loopback, all on this machine's {cpus} CPUs: augtrain serve {plan} plus Serve's controller, proxy "
             f"and ingress processes; plain: 1 uvicorn process, 1 torch thread, one request at a time; load: "
             f"this process, asyncio + aiohttp, keep-alive, one 8x8 PNG a request; {repeats} round(s), every "
             f"server restarted each round, order rotated")
    ratio, text = paired_ratio(figure("batched", 32, "rps"), figure("unbatched", 32, "rps"), THROUGHPUT_GOAL)
    emit("serve_batched_vs_unbatched_c32",
         f"{text}; requests/s at concurrency 32: batched {median('batched', 32, 'rps'):.0f} (--max-batch-size 32 "
         f"--batch-wait-ms 5, the defaults) vs --max-batch-size 1 {median('unbatched', 32, 'rps'):.0f}; "
         f"{levels[32]} requests each; {setup})", THROUGHPUT_GOAL, ratio)
    ratio, text = paired_ratio(figure("batched", 1, "p50"), figure("plain", 1, "p50"), LATENCY_GOAL)
    emit("serve_p50_vs_plain_c1",
         f"{text}; p50 latency at concurrency 1: augtrain serve {median('batched', 1, 'p50'):.1f} ms (batched, "
         f"a request alone is scored at once) vs plain FastAPI + uvicorn {median('plain', 1, 'p50'):.1f} ms; "
         f"--max-batch-size 1 {median('unbatched', 1, 'p50'):.1f} ms; {levels[1]} requests each; {setup})",
         LATENCY_GOAL, ratio)
    failed = {side: sum(r["failed"] for r in rounds[side]) for side in SIDES}
    sent = {side: sum(r["sent"] for r in rounds[side]) for side in SIDES}
    errors = [e for side in SIDES for r in rounds[side] for e in r["errors"]][:3]
    leftovers = [p for side in SIDES for r in rounds[side] for p in r["leftovers"]]
    differing = sum(len(classes) > 1 for classes in answers.values())
    starts = ", ".join(f"{side} {statistics.median(r['start_s'] for r in rounds[side]):.1f} s" for side in SIDES)
    emit("serve_failed_requests",
         f"failed={sum(failed.values())} (of {sum(sent.values())} requests, warm-ups included: "
         + ", ".join(f"{side} {failed[side]}/{sent[side]}" for side in SIDES)
         + f"{'; first: ' + ' | '.join(errors) if errors else ''}; the servers answered {differing} of "
         f"{len(answers)} images with different classes; processes of a server's tree left after it ended: "
         f"{len(leftovers)} (killed), "
         f"new server or Ray processes running at the end: {len(remaining)}; "
         f"start-up to the first 200 of /healthz, medians: {starts}; benchmark wall {wall:.0f} s)",
         FAILED_GOAL, sum(failed.values()))
    for side in SIDES:
        for concurrency, total in levels.items():
            _, text = repeated("req_per_s", figure(side, concurrency, "rps"), digits=0)
            p50, p99 = figure(side, concurrency, "p50"), figure(side, concurrency, "p99")
            emit(f"serve_{side}_c{concurrency}",
                 f"{text}; p50 {statistics.median(p50):.1f} ms [{min(p50):.1f}-{max(p50):.1f}], p99 "
                 f"{statistics.median(p99):.1f} ms [{min(p99):.1f}-{max(p99):.1f}]; {total} requests at concurrency "
                 f"{concurrency}; {DESCRIBED[side]}{rounds[side][0]['plan'].removeprefix('plan: ')})",
                 None)
    print(f"serve_load: {wall:.0f} s", flush=True)


if __name__ == "__main__":
    main()
