"""Bundle: a run's self-contained model at RUN_DIR/model/, loaded without unpickling anything.

Files: model.safetensors (weights), spec.yaml (the resolved job), normalization.json, classes.json,
input.json (sample shape and dtype, dataset hash, the settings a modality binds: audio's sample rate and
spectrogram), metrics.json, and manifest.json with each file's
SHA-256. A bundle may come from anyone, so loading trusts nothing in it:
- the manifest must list exactly these files; each is read once, checked against its hash, and only
  the checked bytes are parsed (no value comes from an unhashed field);
- every value is checked before use, and the model the spec describes must match the weights'
  tensors before its own memory is allocated;
- with a public key (`augtrain sign` made the signature) the whole folder must be signed by it:
  hashes alone cannot catch a manifest rewritten along with the files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from torch import nn

from augtrain.artifacts.signing import BundleError, verify_bundle
from augtrain.config.spec import Job, SpecError, dump_job, parse_job, read_yaml
from augtrain.datasets.files import read_bytes
from augtrain.datasets.format import HEX_DIGEST, classes_problem, layout_problem
from augtrain.errors import clip, refuse_constant
from augtrain.modalities import Modality, for_model
from augtrain.training.checkpoint import WEIGHTS

FILES = (WEIGHTS, "spec.yaml", "normalization.json", "classes.json", "input.json", "metrics.json")
FORMAT = 2  # 2: input.json holds the sample layout; the manifest lists files only
MAX_BYTES = {WEIGHTS: 8 << 30}  # any other file: MAX_METADATA_BYTES
MAX_METADATA_BYTES = 16 << 20


@dataclass(frozen=True)
class Bundle:
    model: nn.Module
    job: Job
    stats: dict
    classes: list[str]
    shape: list[int]  # one sample, as collected
    dtype: str
    modality: Modality
    metrics: dict = field(default_factory=dict)  # metrics.json: {"test": ...}
    digest: str = ""  # SHA-256 of manifest.json, which hashes every file: the bundle's identity


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
    layout = {"shape": dataset["shape"], "dtype": dataset["dtype"], "dataset_hash": dataset["hash"],
              **for_model(job.model.name).binding(dataset)}  # e.g. an audio model's sample rate and spectrogram
    (out / "input.json").write_text(json.dumps(layout))
    (out / "metrics.json").write_text(json.dumps({"test": metrics["test"]}, indent=2))
    manifest = {"format": FORMAT, "files": {name: _sha256(out / name) for name in FILES}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


def bundle_folder(path: str | Path) -> Path:
    """The bundle folder of a run dir or of the bundle itself."""
    path = Path(path)
    folder = path / "model" if (path / "model" / "manifest.json").is_file() else path
    if not (folder / "manifest.json").is_file():
        raise BundleError(f"{path}: not a model bundle or run dir (no manifest.json)")
    return folder


def load_bundle(path: str | Path, public_key: str | Path | None = None, modality: Modality | None = None) -> Bundle:
    """Load a bundle (or a run dir holding one) after checking it whole: signature (with `public_key`),
    file list, hashes, values, and weights against the model. Its model comes from the registry, or
    from `modality` (in a Ray process, the one its driver resolved)."""
    folder = bundle_folder(path)
    if public_key is not None:
        verify_bundle(folder, Path(public_key))
    files, digest = _listed_files(folder)
    blobs = {name: _checked_bytes(folder / name, digest) for name, digest in files.items()}
    try:
        job = parse_job(read_yaml(_text(folder, blobs, "spec.yaml"), str(folder / "spec.yaml")), str(folder / "spec.yaml"))
    except SpecError as exc:
        raise BundleError(str(exc)) from None
    classes = _json(folder, blobs, "classes.json")
    layout = _json(folder, blobs, "input.json")
    stats = _json(folder, blobs, "normalization.json")
    metrics = _json(folder, blobs, "metrics.json", nan=True)
    problem = classes_problem(classes) or (
        layout_problem(layout) if isinstance(layout, dict) else "input.json: not a JSON object"
    )
    if problem:
        raise BundleError(f"{folder}: {problem}")
    try:
        modality = (modality or for_model(job.model.name)).bind(layout)
    except ValueError as exc:
        raise BundleError(f"{folder}: input.json: {clip(exc)}") from None
    model = _model(folder, job, modality, layout["shape"], len(classes), blobs[WEIGHTS])
    problem = modality.stats_problem(stats, layout["shape"])  # once the model fits
    if problem:
        raise BundleError(f"{folder}: {problem}")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("test"), dict):
        raise BundleError(f"{folder}: metrics.json: expected an object with the test metrics")
    return Bundle(model.eval(), job, stats, classes, layout["shape"], layout["dtype"], modality, metrics, digest)


def _listed_files(folder: Path) -> tuple[dict[str, str], str]:
    """The manifest's {file: SHA-256}, which must name exactly the bundle's files, and its own SHA-256."""
    try:
        text = _read(folder / "manifest.json", MAX_METADATA_BYTES)
        manifest = json.loads(text)
    except (ValueError, OSError, RecursionError) as exc:
        raise BundleError(f"{folder / 'manifest.json'}: not a bundle manifest: {clip(exc, 200)}") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(files, dict):
        raise BundleError(f"{folder / 'manifest.json'}: not a bundle manifest of format {FORMAT} (with a files map)")
    if set(files) != set(FILES):
        missing, extra = sorted(set(FILES) - set(files)), sorted(map(str, set(files) - set(FILES)))[:5]
        raise BundleError(f"{folder / 'manifest.json'}: must list exactly {list(FILES)} (missing {missing}, unknown {extra})")
    bad = [name for name, digest in files.items() if not isinstance(digest, str) or not HEX_DIGEST.fullmatch(digest)]
    if bad:
        raise BundleError(f"{folder / 'manifest.json'}: {bad[0]}: not a SHA-256 hex digest")
    return files, hashlib.sha256(text).hexdigest()


def size_limit(name: str) -> int:
    """The most bytes a bundle's file `name` may have."""
    return MAX_BYTES.get(name, MAX_METADATA_BYTES)


def _read(path: Path, limit: int) -> bytes:
    """The bytes of a regular file (not a link) of at most `limit` bytes."""
    if path.is_symlink():
        raise OSError(f"{path.name}: a link, not a regular file")
    return read_bytes(path, limit)


def _checked_bytes(file: Path, digest: str) -> bytes:
    try:
        data = _read(file, size_limit(file.name))
    except FileNotFoundError:
        raise BundleError(f"{file}: missing from the bundle") from None
    except OSError as exc:
        raise BundleError(f"{file}: {exc}") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise BundleError(f"{file}: does not match the bundle manifest (SHA-256 differs); refusing to load")
    return data


def _text(folder: Path, blobs: dict[str, bytes], name: str) -> str:
    try:
        return blobs[name].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{folder / name}: not UTF-8 text (byte {exc.start + 1})") from None


def _json(folder: Path, blobs: dict[str, bytes], name: str, nan: bool = False):
    """A bundle file's JSON; NaN and Infinity only where `nan` (a diverged run's losses in metrics.json),
    never in what the model's inputs are made with."""
    try:
        return json.loads(_text(folder, blobs, name), parse_constant=None if nan else refuse_constant)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
        raise BundleError(f"{folder / name}: not valid JSON: {clip(exc, 200)}") from None


def _model(folder: Path, job: Job, builder: Modality, shape: list[int], classes: int, weights: bytes) -> nn.Module:
    """The spec's model with the bundle's weights, whose tensors must match it name for name and shape
    for shape before the model is built for real (its size comes from values a bundle could inflate)."""
    try:
        tensors = load_tensors(weights)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise BundleError(f"{folder / WEIGHTS}: not loadable weights: {clip(exc, 200)}") from None
    try:
        with torch.device("meta"):
            skeleton = builder.build_model(job.model.name, job.model.params, shape, classes)
    except (ValueError, TypeError, RuntimeError) as exc:  # e.g. an image model given a 1-D sample shape
        raise BundleError(f"{folder}: model {job.model.name!r} cannot be built for samples of shape {shape}: "
                          f"{clip(exc, 200)}") from None
    wanted = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in tensors.items()}
    if wanted != found:
        differ = sorted(name for name in wanted.keys() | found.keys() if wanted.get(name) != found.get(name))
        raise BundleError(
            f"{folder / WEIGHTS}: the weights do not fit the model the spec describes "
            f"({len(differ)} tensor(s) differ: {', '.join(differ[:4])}{', ...' if len(differ) > 4 else ''})"
        )
    model = builder.build_model(job.model.name, job.model.params, shape, classes)
    model.load_state_dict(tensors)
    return model
