"""Issue 21: the floor Ray Serve itself puts under `augtrain serve` on this machine, with no model in it.

Two Ray Serve applications that answer every /predict with a constant (the answer `augtrain serve` gives for
one image: no decoding, no model), started as `augtrain serve` starts its own (embedded Ray, `start_ray`, the
same fast-path settings, a FastAPI ingress with no CPU of its own, quiet logs):

- constant_1hop: the ingress answers itself (Serve's proxy -> ingress: the fewest hops Serve allows);
- constant_2hop: the ingress asks a second deployment, as augtrain's ingress asks its Scorer (proxy ->
  ingress -> deployment), the Scorer doing nothing;

beside `augtrain serve --max-batch-size 1` (unbatched) and the plain FastAPI + uvicorn server scoring the model
(serve_load.py's). Each server a fresh process, loaded and stopped one at a time, 3 rounds with the order
rotated; the load generator is serve_load.py's (aiohttp, keep-alive, same bodies: one 8x8 PNG each).

INFO rows (a floor has no goal of its own; each says whether it leaves room for the issue's goal):
- serve_floor_p50_vs_plain_c1: constant_1hop's p50 at concurrency 1 / the plain server's, against serve_load's
  goal of 1.5 (no augtrain serve can answer faster than Serve answering a constant);
- serve_floor_vs_unbatched_c32: constant_1hop's requests/s at concurrency 32 / unbatched augtrain serve's,
  against serve_load's goal of 3 (batched augtrain serve, however its deployments were arranged, does at
  least what constant_1hop does: even free scoring stops at this ratio, and an unbatched server with fewer
  hops would only lower it).

    cd benchmarks && PYTHONPATH=. python serve_floor.py           # about 4 minutes on 2 CPUs
    cd benchmarks && PYTHONPATH=. python serve_floor.py --smoke   # 1 round, few requests; appends no row
"""

import os
import sys
import tempfile
import time
from pathlib import Path

from common import paired_ratio
from serve_load import (
    LATENCY_GOAL,
    PLAIN,
    THROUGHPUT_GOAL,
    Rounds,
    command_for,
    options,
    served,
    server_env,
    trained,
)

LEVELS = {1: 100, 32: 400}  # concurrency: timed requests
SIDES = ("constant_1hop", "constant_2hop", "unbatched", "plain")
CONSTANT = """
import json, os, sys
from fastapi import FastAPI, Request
from ray import serve
from augtrain.serving.endpoint import FAST_PATH, INGRESS_ONGOING, REPLICA, serve_until_interrupted
from augtrain.training.runtime import start_ray

hops, port = int(sys.argv[1]), int(sys.argv[2])
ANSWER = {"predictions": [{"input": "inputs[0]", "class": "0", "probability": 1.0,
                           "probabilities": {str(c): 0.1 for c in range(10)}}]}
api = FastAPI()


@serve.deployment(ray_actor_options={"num_cpus": 0, **REPLICA})
class Constant:
    async def predict(self, inputs):
        return ANSWER


@serve.deployment(ray_actor_options={"num_cpus": 0, **REPLICA}, max_ongoing_requests=INGRESS_ONGOING)
@serve.ingress(api)
class Ingress:
    def __init__(self, inner):
        self.inner = inner

    @api.get("/healthz")
    async def healthz(self):
        return {"status": "ok"}

    @api.post("/predict")
    async def predict(self, request: Request):
        inputs = json.loads(await request.body())["inputs"]
        return ANSWER if self.inner is None else await self.inner.predict.remote(inputs)


os.environ.update(FAST_PATH)
start_ray(None)
quiet = {"log_level": "WARNING"}
serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=quiet)
serve.run(Ingress.bind(Constant.bind() if hops == 2 else None), name="constant", logging_config=quiet)
print("serving ", flush=True)
serve_until_interrupted("constant")  # as augtrain serve: until SIGTERM, then the application taken down
"""


def floor_command(side: str, run_dir: Path, folder: Path, port: int) -> tuple[list[str], str | None]:
    if side.startswith("constant_"):
        return [sys.executable, str(folder / "constant_server.py"), side[9], str(port)], "serving "
    return command_for(side, run_dir, folder, port)


def room(goal, floor: float) -> str:
    return f"the floor {'leaves room for' if goal.met(floor) else 'rules out'} serve_load's goal {goal}"


def main() -> None:
    repeats, levels, emit = options(__doc__.splitlines()[0], LEVELS)
    began = time.perf_counter()
    env = server_env()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "plain_server.py").write_text(PLAIN)
        (tmp / "constant_server.py").write_text(CONSTANT)
        run_dir, bodies = trained(tmp, env)
        rounds = Rounds(SIDES, repeats, lambda side: served(side, run_dir, tmp, env, bodies, levels, {}, floor_command))
    failed = {side: sum(r["failed"] for r in rounds[side]) for side in SIDES}
    if any(failed.values()):
        raise RuntimeError(f"failed requests: {failed}: the figures would not be comparable")
    figure, median = rounds.figure, rounds.median

    setup = (f"loopback, all on this machine's {os.cpu_count()} CPUs, embedded Ray as augtrain serve starts it; "
             f"plain: 1 uvicorn process scoring the digits model on 1 torch thread; load: serve_load.py's, one "
             f"8x8 PNG a request; {repeats} round(s), every server restarted each round, order rotated; 0 failed "
             f"requests; wall {time.perf_counter() - began:.0f} s")
    ratio, text = paired_ratio(figure("constant_1hop", 1, "p50"), figure("plain", 1, "p50"))
    emit("serve_floor_p50_vs_plain_c1",
         f"{text}; p50 at concurrency 1: Ray Serve answering a constant from its ingress (proxy -> ingress, no "
         f"model) {median('constant_1hop', 1, 'p50'):.1f} ms, through a second deployment as augtrain serve "
         f"does {median('constant_2hop', 1, 'p50'):.1f} ms, augtrain serve --max-batch-size 1 "
         f"{median('unbatched', 1, 'p50'):.1f} ms, vs the plain server scoring the model "
         f"{median('plain', 1, 'p50'):.1f} ms; {room(LATENCY_GOAL, ratio)}; {levels[1]} requests each; {setup})", None)
    ratio, text = paired_ratio(figure("constant_1hop", 32, "rps"), figure("unbatched", 32, "rps"))
    emit("serve_floor_vs_unbatched_c32",
         f"{text}; requests/s at concurrency 32: Ray Serve answering a constant from its ingress (no decoding, "
         f"no model) {median('constant_1hop', 32, 'rps'):.0f}, through a second deployment as augtrain serve "
         f"does {median('constant_2hop', 32, 'rps'):.0f}, vs augtrain serve --max-batch-size 1 "
         f"{median('unbatched', 32, 'rps'):.0f}; plain server {median('plain', 32, 'rps'):.0f}; "
         f"{room(THROUGHPUT_GOAL, ratio)}; {levels[32]} requests each; {setup})", None)


if __name__ == "__main__":
    main()
