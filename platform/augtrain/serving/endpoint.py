"""Serve: a model bundle behind an HTTP endpoint on Ray Serve (`augtrain serve`).

A FastAPI ingress per replica; each replica loads and verifies the bundle once (`load_bundle`). A request's
inputs are decoded by the model's modality as `predict` decodes files (`Modality.decode_input`): a bad one
refuses its own request with a 4xx naming it, before anything is batched. Good inputs of every request are
batched together (`@serve.batch`) and scored by `predict.score`, so answers equal `augtrain predict`'s.
Loopback only, unless a token guards every request (Authorization: Bearer).

No `from __future__ import annotations` here: FastAPI reads the routes' `Request` annotations as classes.
"""

import asyncio
import hmac
import ipaddress
import logging
import signal
import time
from pathlib import Path
from typing import Callable

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from ray import serve

from augtrain.errors import BadInput
from augtrain.serving.page import page
from augtrain.serving.request import (
    MAX_BODY_BYTES,
    MAX_INPUTS,
    RequestError,
    read_body,
    sent_inputs,
)

APP = "augtrain"
REQUEST_TIMEOUT_S = 60  # the proxy answers 408 past this: a request never hangs
MIN_TOKEN = 16  # characters

api = FastAPI(title="augtrain model", docs_url=None, redoc_url=None, openapi_url=None,
              description="A trained augtrain run: POST /predict, GET /model, GET /healthz; GET / is a page to try it.")


def _error(status: int, message: str, **headers) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def answers(bundle, samples: list[np.ndarray]) -> list[dict]:
    """Decoded samples (one batch across requests) -> each one's class, probability and every class's
    probability, scored by `predict.score` as `augtrain predict` scores a batch (samples of one shape together:
    a series model takes any length)."""
    from augtrain.serving.predict import score

    out: list[dict] = [{} for _ in samples]
    groups: dict[tuple, list[int]] = {}
    for i, sample in enumerate(samples):
        groups.setdefault((sample.shape, str(sample.dtype)), []).append(i)
    for (shape, dtype), indices in groups.items():
        batch = {"id": np.asarray(indices, dtype=object), "label": np.full(len(indices), "", dtype=object),
                 "x": np.asarray([np.ascontiguousarray(samples[i]).tobytes() for i in indices], dtype=object),
                 "reason": np.full(len(indices), "", dtype=object)}
        rows = score(bundle, batch, {"dtype": dtype, "shape": list(shape)})
        for j, i in enumerate(indices):
            out[i] = {"class": str(rows["predicted"][j]), "probability": float(rows["probability"][j]),
                      "probabilities": {name: float(rows[f"p_{name}"][j]) for name in bundle.classes}}
    return out


# after every helper it calls: serve.ingress copies the class (and what its methods see) when it decorates it
@serve.deployment
@serve.ingress(api)
class Endpoint:
    """One replica: the verified bundle, its decoding settings, the token that guards it."""

    def __init__(self, bundle_dir: str, public_key: str | None, modality, token: str | None, cluster_token: bool,
                 max_batch_size: int, batch_wait_s: float, threads: int):
        import torch

        from augtrain.artifacts.bundle import load_bundle
        from augtrain.serving.predict import prediction_data

        torch.set_num_threads(threads)
        self.bundle = load_bundle(bundle_dir, public_key, modality)
        self.data = prediction_data(self.bundle, "request")
        self.token, self.cluster_token = token, cluster_token
        self.scored.set_max_batch_size(max_batch_size)
        self.scored.set_batch_wait_timeout_s(batch_wait_s)

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

    @api.get("/healthz")
    async def healthz(self, request: Request):
        """200 once the replica has loaded its bundle."""
        return self._refused(request) or {"status": "ok"}

    @api.get("/model")
    async def model(self, request: Request):
        """The classes, the input the model takes, its test metrics, the bundle's hash, the request limits."""
        bundle = self.bundle
        return self._refused(request) or {
            "model": bundle.job.model.name,
            "classes": bundle.classes,
            "input": {"kind": bundle.modality.kind, "shape": bundle.shape, "dtype": bundle.dtype,
                      "fixed_shape": bundle.modality.fixed_shape},
            "metrics": bundle.metrics["test"],
            "bundle": bundle.digest,
            "limits": {"max_body_bytes": MAX_BODY_BYTES, "max_inputs": MAX_INPUTS},
        }

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
            samples = await asyncio.to_thread(self._decoded, inputs)
        except RequestError as exc:
            return _error(exc.status, str(exc))
        answers = await asyncio.gather(*(self.scored(sample) for sample in samples))
        return {"predictions": [{"input": name, **answer} for (name, _), answer in zip(inputs, answers)]}

    def _decoded(self, inputs: list[tuple[str, object]]) -> list[np.ndarray]:
        samples = []
        for name, value in inputs:
            sample, reason = self.bundle.modality.decode_input(value, self.data, self.bundle.shape)
            if reason:
                raise RequestError(422, f"{name}: {reason}")
            samples.append(sample)
        return samples

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def scored(self, samples: list[np.ndarray]) -> list[dict]:
        return await asyncio.to_thread(answers, self.bundle, samples)

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi(self, request: Request):
        return self._refused(request) or api.openapi()

    @api.get("/", include_in_schema=False)
    async def try_it(self):
        """The try-it page: the same for every model (it holds nothing of this one), so open; what it fetches
        is guarded (it asks for the token, or reads it from the link's #token=)."""
        html, headers = page()
        return HTMLResponse(html, headers=headers)


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

    if not 1 <= max_batch_size <= 4096:
        raise BadInput(f"--max-batch-size {max_batch_size}: between 1 and 4096")
    if not 0 <= batch_wait_ms <= 10_000:
        raise BadInput(f"--batch-wait-ms {batch_wait_ms:g}: between 0 and 10000")
    if token is not None and len(token) < MIN_TOKEN:
        raise BadInput(f"--token: at least {MIN_TOKEN} characters")
    bundle = load_bundle(run, public_key)  # a bad bundle is one error line here, before Ray starts
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
    app = Endpoint.options(
        num_replicas=plan.replicas,
        ray_actor_options={"num_cpus": plan.cpus_per_replica},
        max_ongoing_requests=max(2 * max_batch_size, 16),  # room for a full batch and the next one's requests
    ).bind(str(bundle_folder(run).resolve()), None if public_key is None else str(Path(public_key).resolve()),
           bundle.modality, token, cluster_token, max_batch_size, batch_wait_ms / 1000, plan.threads_per_replica)
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
