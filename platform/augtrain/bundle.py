"""Bundle: a run's self-contained model at RUN_DIR/model/, loaded without unpickling anything.

Files: model.safetensors (weights), spec.yaml (the resolved job), normalization.json, classes.json,
metrics.json, and manifest.json with every file's SHA-256, the dataset hash and the sample shape.
A bundle whose files do not match its manifest is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from augtrain.models import build_model
from augtrain.spec import Job, dump_job, parse_job

WEIGHTS = "model.safetensors"
FORMAT = 1


class BundleError(ValueError):
    """A bundle that is missing, incomplete or altered."""


@dataclass(frozen=True)
class Bundle:
    model: nn.Module
    job: Job
    stats: dict
    classes: list[str]
    manifest: dict


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_bundle(run_dir: Path, job: Job, dataset: dict, stats: dict, weights: Path, metrics: dict) -> Path:
    """Write RUN_DIR/model/ from a checkpoint's safetensors weights and the run's metadata."""
    out = run_dir / "model"
    out.mkdir(exist_ok=True)
    shutil.copyfile(weights, out / WEIGHTS)
    (out / "spec.yaml").write_text(dump_job(job))
    (out / "normalization.json").write_text(json.dumps({k: v for k, v in stats.items() if k != "hash"}))
    (out / "classes.json").write_text(json.dumps(dataset["classes"]))
    (out / "metrics.json").write_text(json.dumps({"test": metrics["test"]}, indent=2))
    files = {p.name: _sha256(p) for p in sorted(out.iterdir()) if p.name != "manifest.json"}
    manifest = {
        "format": FORMAT,
        "files": files,
        "dataset_hash": dataset["hash"],
        "shape": dataset["shape"],
        "dtype": dataset["dtype"],
        "model": job.model.name,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle (or a run dir holding one) after checking every file against its manifest."""
    path = Path(path)
    folder = path / "model" if (path / "model" / "manifest.json").is_file() else path
    if not (folder / "manifest.json").is_file():
        raise BundleError(f"{path}: not a model bundle or run dir (no manifest.json)")
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        file = folder / name
        if not file.is_file():
            raise BundleError(f"{file}: missing from the bundle")
        if _sha256(file) != digest:
            raise BundleError(f"{file}: does not match the bundle manifest (SHA-256 differs); refusing to load")
    job = parse_job(yaml.safe_load((folder / "spec.yaml").read_text()), str(folder / "spec.yaml"))
    classes = json.loads((folder / "classes.json").read_text())
    model = build_model(job.model.name, job.model.params, manifest["shape"], len(classes))
    try:
        model.load_state_dict(load_file(str(folder / WEIGHTS)))
    except (SafetensorError, RuntimeError) as exc:
        raise BundleError(f"{folder / WEIGHTS}: not loadable weights: {exc}") from None
    stats = json.loads((folder / "normalization.json").read_text())
    return Bundle(model.eval(), job, stats, classes, manifest)
