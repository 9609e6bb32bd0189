"""Serve: a model bundle behind an HTTP endpoint on Ray Serve (`augtrain serve`).

Two deployments: this FastAPI ingress, which holds no model (the token, the request read as hostile, the
try-it page), and the `Scorer` replicas (`scorer.py`), which load the bundle and decode and score inputs,
batched across requests. A Scorer replica that dies fails only the requests it held: the ingress answers them
503 with Retry-After, and Serve starts a new one. Loopback only, unless a token guards every request
(Authorization: Bearer).

No `from __future__ import annotations` here: FastAPI reads the routes' `Request` annotations as classes.
"""

import hmac
import ipaddress
import logging
import os
import signal
import time
from pathlib import Path
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from augtrain.errors import BadInput
from augtrain.serving.page import page
from augtrain.serving.request import RequestError, read_body, sent_inputs
from augtrain.serving.scorer import HEALTH_CHECK_S, Scorer

APP = "augtrain"
REQUEST_TIMEOUT_S = 60  # the proxy answers 408 past this: a request never hangs
MIN_TOKEN = 16  # characters
INGRESS_ONGOING = 256  # requests an ingress replica holds at once: it only reads them and waits on a Scorer
# a Scorer replica gone: what the ingress answers the requests it held, and what it says to retry after
UNAVAILABLE = (RayActorError, BackPressureError, DeploymentUnavailableError)
RETRY_AFTER_S = 2 * HEALTH_CHECK_S
# Ray Serve's faster request path, as its RAY_SERVE_THROUGHPUT_OPTIMIZED sets it less the direct ingress (which
# would open an HTTP port per replica): the ingress calls the Scorer over gRPC, and each replica runs its router
# and its methods on its own event loop (no thread hop). Measured: p50 at concurrency 1 and 32 req/s, both ~1.4x.
FAST_PATH = {"RAY_SERVE_USE_GRPC_BY_DEFAULT": "1", "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
             "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0"}
REPLICA = {"runtime_env": {"env_vars": FAST_PATH}}  # merged into the job's runtime env, env var by env var

api = FastAPI(title="augtrain model", docs_url=None, redoc_url=None, openapi_url=None,
              description="A trained augtrain run: POST /predict, GET /model, GET /healthz; GET / is a page to try it.")


def _error(status: int, message: str, **headers) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def checked_token(token: str | None) -> str | None:
    if token is not None and len(token) < MIN_TOKEN:
        raise BadInput(f"--token: at least {MIN_TOKEN} characters")
    return token


def check_batching(max_batch_size: int, batch_wait_ms: float) -> None:
    if not 1 <= max_batch_size <= 4096:
        raise BadInput(f"--max-batch-size {max_batch_size}: between 1 and 4096")
    if not 0 <= batch_wait_ms <= 10_000:
        raise BadInput(f"--batch-wait-ms {batch_wait_ms:g}: between 0 and 10000")


async def answered(response) -> dict | JSONResponse:
    """A Scorer's answer, or 503 with Retry-After when none can answer: the replica died mid-request (Serve
    retries a request it had not started on another replica, or on the one it starts instead), or all are
    busy or starting."""
    try:
        return await response
    except UNAVAILABLE:
        return _error(503, "the model's replica is unavailable (Serve restarts one that died): retry",
                      **{"Retry-After": str(RETRY_AFTER_S)})


# after every helper it calls: serve.ingress copies the class (and what its methods see) when it decorates it
@serve.deployment(ray_actor_options={"num_cpus": 0, **REPLICA}, max_ongoing_requests=INGRESS_ONGOING)
@serve.ingress(api)
class Endpoint:
    """One ingress replica: the Scorer's handle and the token that guards it (given, or read from the
    environment variable `token_env` of the node it runs on: a config file names the variable, never the
    token)."""

    def __init__(self, scorer, token: str | None, cluster_token: bool, token_env: str | None = None):
        if token_env is not None:
            token = os.environ.get(token_env)
            if token is None:
                raise BadInput(f"{token_env} is not set on this node: it holds the token every request must send")
        self.token, self.cluster_token = checked_token(token), cluster_token
        self.scorer = scorer

    def _refused(self, request: Request) -> JSONResponse | None:
        """401 unless the request carries the token (when one guards the endpoint); nothing else is read."""
        if self.token is None and not self.cluster_token:
            return None
        header = request.headers.get("authorization", "")
        if self.token is not None:
            allowed = hmac.compare_digest(header.encode(), f"Bearer {self.token}".encode())
        else:
            from ray._raylet import (
                validate_authentication_token,  # the cluster's token, as Ray checks it
            )

            allowed = bool(header) and validate_authentication_token(header)
        if allowed:
            return None
        return _error(401, "missing or wrong token: send Authorization: Bearer TOKEN", **{"WWW-Authenticate": "Bearer"})

    async def _scorer(self, method: str, *args) -> dict | JSONResponse:
        return await answered(getattr(self.scorer, method).remote(*args))

    @api.get("/healthz")
    async def healthz(self, request: Request):
        """200 once a replica has loaded the bundle and answers; 503 while none does."""
        refused = self._refused(request)
        if refused:
            return refused
        answer = await self._scorer("describe")
        return answer if isinstance(answer, JSONResponse) else {"status": "ok"}

    @api.get("/model")
    async def model(self, request: Request):
        """The classes, the input the model takes, its test metrics, the bundle's hash, the request limits."""
        return self._refused(request) or await self._scorer("describe")

    @api.post("/predict")
    async def predict(self, request: Request):
        """Inputs as JSON {"inputs": [...]} (a string: a file's bytes in base64, e.g. an image; an array:
        nested numbers, e.g. a series of T steps x C channels) or multipart/form-data files; at most
        64 inputs and 16 MiB a request. Answers each input's class, its probability and every class's."""
        refused = self._refused(request)
        if refused:
            return refused
        try:
            inputs = sent_inputs(request.headers.get("content-type", ""), await read_body(request))
        except RequestError as exc:
            return _error(exc.status, str(exc))
        answer = await self._scorer("predict", inputs)
        if isinstance(answer, dict) and "error" in answer:
            return _error(answer["status"], answer["error"])
        return answer

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi(self, request: Request):
        return self._refused(request) or api.openapi()

    @api.get("/", include_in_schema=False)
    async def try_it(self):
        """The try-it page: the same for every model (it holds nothing of this one), so open; what it fetches
        is guarded (it asks for the token, or reads it from the link's #token=)."""
        html, headers = page()
        return HTMLResponse(html, headers=headers)


def application(bundle: str, public_key: str | None, modality, plan, max_batch_size: int, batch_wait_s: float,
                token: str | None = None, cluster_token: bool = False, token_env: str | None = None,
                digest: str | None = None):
    """The bound application: `plan.replicas` Scorer replicas of the bundle (a path, or a URI each copies it
    from; `digest`: the only bundle they accept) behind as many ingress replicas (no CPU of their own: they
    wait on the Scorers)."""
    scorer = Scorer.options(
        num_replicas=plan.replicas,
        ray_actor_options={"num_cpus": plan.cpus_per_replica, **REPLICA},
        max_ongoing_requests=max(2 * max_batch_size, 16),  # room for a full batch and the next one's requests
    ).bind(bundle, public_key, modality, max_batch_size, batch_wait_s, plan.threads_per_replica, digest)
    return Endpoint.options(num_replicas=plan.replicas).bind(scorer, token, cluster_token, token_env)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def cluster_token_auth() -> bool:
    """Whether the Ray this process is attached to checks a token (Ray 2.60's token authentication)."""
    try:
        from ray._private.authentication.authentication_utils import (
            is_token_auth_enabled,
        )
    except ImportError:
        return False
    return is_token_auth_enabled()


def start_endpoint(run: str | Path, host: str = "127.0.0.1", port: int = 8000, replicas: int = 1,
                   max_batch_size: int = 32, batch_wait_ms: float = 5.0, token: str | None = None,
                   address: str | None = None, public_key: str | Path | None = None, name: str = APP,
                   route_prefix: str = "/", echo: Callable[[str], None] = print) -> str:
    """Serve the bundle of `run` on Ray Serve (embedded, or the cluster at `address`); return its URL once
    every replica has loaded the bundle."""
    from augtrain.artifacts.bundle import bundle_folder, load_bundle
    from augtrain.training.plan import plan_replicas
    from augtrain.training.runtime import cluster_cpus_gpus, start_ray

    check_batching(max_batch_size, batch_wait_ms)
    checked_token(token)
    bundle = load_bundle(run, public_key)  # a bad bundle is one error line here, before Ray starts
    os.environ.update(FAST_PATH)  # an embedded Ray's Serve proxy (a cluster's is started by its own settings)
    start_ray(address)
    cluster_token = not is_loopback(host) and token is None
    if cluster_token and not cluster_token_auth():
        raise BadInput(f"--host {host} is not loopback: give --token (every request must then carry it), "
                       "or serve on a Ray cluster with token authentication")
    plan = plan_replicas(replicas, cluster_cpus_gpus()[0])
    echo(plan.describe())
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # this process's "Started Serve", "ready at"
    quiet = {"log_level": "WARNING"}  # Serve's INFO lines (every deployment step, every request) stay in its logs
    serve.start(http_options={"host": host, "port": port, "request_timeout_s": REQUEST_TIMEOUT_S}, logging_config=quiet)
    app = application(str(bundle_folder(run).resolve()), None if public_key is None else str(Path(public_key).resolve()),
                      bundle.modality, plan, max_batch_size, batch_wait_ms / 1000, token, cluster_token)
    serve.run(app, name=name, route_prefix=route_prefix, logging_config=quiet)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{route_prefix.rstrip('/')}"


def serve_until_interrupted(name: str = APP) -> None:
    """Block until Ctrl-C (or SIGTERM, as a service manager stops it), then take the application down."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # a process started in the background of a script ignores SIGINT
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        serve.delete(name)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
