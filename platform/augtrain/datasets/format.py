"""The collected dataset on disk: part-<split>-*.parquet shards (id, x sample bytes, y class index),
quarantine.parquet and manifest.json; reading it back, and checking a manifest from anyone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from augtrain.datasets.sources import SourceError
from augtrain.datasets.storage import file_names, join, open_input, read_text
from augtrain.errors import clip
from augtrain.modalities import MODALITIES

SPLITS = ("train", "val", "test")
FORMAT = 2  # 2: manifest has kind
DTYPES = ("uint8", "float32")
MAX_SAMPLE_VALUES = 1 << 28  # larger than any sample data.max_pixels lets through
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def read_manifest(location: str | Path) -> dict:
    """The manifest of a collected dataset, or SourceError if `location` is not one."""
    text = read_text(join(str(location), "manifest.json"))
    if text is None:
        raise SourceError(f"{location}: not a collected dataset (no manifest.json); run `augtrain collect` first")
    return parse_manifest(text, join(str(location), "manifest.json"))


def dataset_version(location: str, digest: str | None) -> str:
    """Where the collected dataset of hash `digest` is now: at `location`, or, once a changed source was
    collected there again, the version kept beside it (<location>@<hash12>: see collect). SourceError if
    neither holds it; `location` itself for no digest."""
    if digest is None:
        return location
    for candidate in (location, f"{location.rstrip('/')}@{digest[:12]}"):
        try:
            if read_manifest(candidate)["hash"] == digest:
                return candidate
        except SourceError:
            continue
    raise SourceError(f"{location}: no longer holds the dataset of hash {digest[:12]} (collected again since, and "
                      "that version is gone)")


def parse_manifest(text: str, where: str) -> dict:
    """A dataset manifest checked before any of its values is used: a dataset folder may come from anyone."""
    try:
        manifest = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
        raise SourceError(f"{where}: not valid JSON: {clip(exc, 200)}") from None
    problem = _manifest_problem(manifest) if isinstance(manifest, dict) else "not a JSON object"
    if problem:
        raise SourceError(f"{where}: {problem}")
    return manifest


def _manifest_problem(manifest: dict) -> str | None:
    if not isinstance(manifest.get("hash"), str) or not HEX_DIGEST.fullmatch(manifest["hash"]):
        return "hash is not a SHA-256 hex digest"
    if manifest.get("kind") not in MODALITIES:
        return f"kind must be one of {tuple(MODALITIES)}"
    counts = manifest.get("counts")
    if not isinstance(counts, dict) or not all(isinstance(c, dict) for c in counts.values()):
        return "counts must map each split to its per-class counts"
    return layout_problem(manifest) or classes_problem(manifest.get("classes"))


def layout_problem(layout: dict) -> str | None:
    """What is wrong with the `shape` and `dtype` of samples a file from elsewhere declares, if anything."""
    shape = layout.get("shape")
    if layout.get("dtype") not in DTYPES:
        return f"dtype must be one of {DTYPES}"
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 3 or not all(type(n) is int and n > 0 for n in shape)
            or int(np.prod(shape)) > MAX_SAMPLE_VALUES):
        return f"shape must be 1 to 3 positive whole numbers of at most {MAX_SAMPLE_VALUES} values in all"
    return None


def classes_problem(classes) -> str | None:
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        return "classes must be a list of at least 2 names"
    if len(set(classes)) != len(classes):
        return "classes must be distinct names"
    return None


def split_files(location: str | Path, split: str) -> list[str]:
    """The Parquet shards of one split in order: absolute paths, or URIs."""
    names = file_names(str(location))
    return [join(str(location), name) for name in names if name.startswith(f"part-{split}-") and name.endswith(".parquet")]


def read_columns(files: list[str], columns: list[str]) -> pa.Table:
    """Columns of Parquet shards (paths or URIs), their rows in order."""
    return pa.concat_tables(pq.read_table(open_input(file), columns=columns) for file in files)


def decode_samples(column, manifest: dict) -> np.ndarray:
    """The `x` column of a batch (sample bytes) back to an (N, *shape) array."""
    return np.frombuffer(b"".join(column), dtype=manifest["dtype"]).reshape(-1, *manifest["shape"])
