"""The model's replicas on Ray Serve: each loads and verifies the bundle once, decodes a request's inputs by
the model's modality (`Modality.decode_input`, as `predict` decodes files: a bad one refuses its own request
with a 4xx naming it, before anything is batched) and scores the good inputs of every request together
(`@serve.batch`, `predict.score`), so answers equal `augtrain predict`'s.

A deployment of its own behind the ingress (`endpoint.py`), which holds no model: when a replica dies the
ingress's call fails with Ray's actor error, the ingress answers 503 with Retry-After, and Serve starts a
new replica (it checks every `HEALTH_CHECK_S`).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Iterator

import numpy as np
from ray import serve

from augtrain.serving.request import MAX_BODY_BYTES, MAX_INPUTS, RequestError

HEALTH_CHECK_S = 2  # how often Serve checks a replica: a dead one is replaced within about this


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


@contextlib.contextmanager
def local_bundle(location: str) -> Iterator[str]:
    """A bundle kept at a URI (the bundle, or a run dir holding one), copied into a new private folder where
    `load_bundle` verifies it, removed once loaded (a Bundle holds all it needs); a path as it is. Only the
    files a bundle is made of are copied, each no larger than a bundle's may be (`load_bundle` names any
    missing one): nothing else kept beside it at the URI reaches the replica's disk."""
    from augtrain.datasets.locations import is_uri

    if not is_uri(location):
        yield location
        return
    import tempfile

    import pyarrow.fs as pafs

    from augtrain.artifacts.bundle import FILES, BundleError, size_limit
    from augtrain.artifacts.signing import SIGNATURE
    from augtrain.datasets.storage import filesystem

    fs, path = filesystem(location)
    path = path.rstrip("/")
    if fs.get_file_info(f"{path}/model/manifest.json").type == pafs.FileType.File:
        path = f"{path}/model"
    with tempfile.TemporaryDirectory(prefix="augtrain-bundle-") as local:
        for name in (*FILES, "manifest.json", SIGNATURE):
            info = fs.get_file_info(f"{path}/{name}")
            if info.type != pafs.FileType.File:
                continue
            if info.size > size_limit(name):
                raise BundleError(f"{location}: {name}: {info.size} bytes, more than a bundle's may be ({size_limit(name)})")
            pafs.copy_files(info.path, str(Path(local) / name), source_filesystem=fs,
                            destination_filesystem=pafs.LocalFileSystem())
        yield local


@serve.deployment(health_check_period_s=HEALTH_CHECK_S)
class Scorer:
    """One replica: the verified bundle and its decoding settings."""

    def __init__(self, bundle: str, public_key: str | None, modality, max_batch_size: int,
                 batch_wait_s: float, threads: int, digest: str | None = None):
        import torch

        from augtrain.artifacts.bundle import BundleError, load_bundle
        from augtrain.serving.predict import prediction_data

        torch.set_num_threads(threads)
        with local_bundle(bundle) as folder:
            self.bundle = load_bundle(folder, public_key, modality)
        if digest is not None and self.bundle.digest != digest:
            raise BundleError(f"{bundle}: not the bundle this application was written for (its hash "
                              f"{self.bundle.digest[:12]}, expected {digest[:12]})")
        self.data = prediction_data(self.bundle, "request")
        self.scored.set_max_batch_size(max_batch_size)
        self.batch_wait_s, self.waiting = batch_wait_s, 0

    def describe(self) -> dict:
        """The classes, the input the model takes, its test metrics, the bundle's hash, the request limits."""
        bundle = self.bundle
        return {
            "model": bundle.job.model.name,
            "classes": bundle.classes,
            "input": {"kind": bundle.modality.kind, "shape": bundle.shape, "dtype": bundle.dtype,
                      "fixed_shape": bundle.modality.fixed_shape},
            "metrics": bundle.metrics["test"],
            "bundle": bundle.digest,
            "limits": {"max_body_bytes": MAX_BODY_BYTES, "max_inputs": MAX_INPUTS},
        }

    async def predict(self, inputs: list[tuple[str, object]]) -> dict:
        """Named inputs -> {"predictions": [...]} in their order, or {"status": 4xx, "error": ...} for the first
        bad one (a plain answer: an exception would reach the ingress wrapped in Ray's)."""
        try:
            samples = await asyncio.to_thread(self._decoded, inputs)
        except RequestError as exc:
            return {"status": exc.status, "error": str(exc)}
        # a batch gathers requests only while others wait or are being scored: one that finds the replica idle
        # is scored at once (`@serve.batch` would hold it for the whole wait)
        self.scored.set_batch_wait_timeout_s(self.batch_wait_s if self.waiting else 0)
        self.waiting += len(samples)
        try:
            scored = await asyncio.gather(*(self.scored(sample) for sample in samples))
        finally:
            self.waiting -= len(samples)
        return {"predictions": [{"input": name, **answer} for (name, _), answer in zip(inputs, scored)]}

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
