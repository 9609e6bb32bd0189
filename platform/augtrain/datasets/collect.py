"""Collect: a raw source -> a versioned Parquet dataset (part-<split>-*.parquet, manifest.json, quarantine.parquet)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from augtrain.config.spec import Data
from augtrain.datasets.format import FORMAT, SPLITS, parse_manifest
from augtrain.datasets.sources import Loaded, SourceError
from augtrain.datasets.storage import (
    file_names,
    is_uri,
    join,
    move,
    publish,
    read_text,
    remove,
    subfolders,
)
from augtrain.modalities import Modality, read_source

ROWS_PER_SHARD = 4096
# Ray Data reads a shard as one block and maps a block in one task: 4096 224x224 RGB images in one
# shard (600 MB) would augment on a single core. Shards hold at most this many bytes of samples.
BYTES_PER_SHARD = 16 * 2**20


@dataclass(frozen=True)
class Collected:
    path: str  # an absolute folder or a URI (see augtrain.datasets.storage)
    manifest: dict
    skipped: bool


def default_path(data: Data) -> str:
    """Where a job's dataset lives (absolute, or a URI): `data.path`, or else data/<source name>."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(data.source).stem).strip("-.") or "dataset"
    return join(data.path or str(Path("data") / name))


def collect(data: Data, out: str | Path | None = None) -> Collected:
    """Collect `data.source` into `out` (default: the job's dataset dir); skip if already collected."""
    out = join(str(out)) if out else default_path(data)
    existing = read_text(join(out, "manifest.json"))
    if existing is None and (file_names(out) or subfolders(out)):
        raise SourceError(f"{out}: exists and is not a collected dataset; choose another output folder")
    previous = parse_manifest(existing, join(out, "manifest.json")) if existing is not None else None
    reader, loaded = read_source(data)
    if not loaded.samples:
        raise SourceError(f"{data.source}: no usable samples ({len(loaded.rejects)} quarantined)")
    if loaded.samples[0].size == 0:
        raise SourceError(f"{data.source}: the samples hold no values (shape {loaded.samples[0].shape})")
    classes = sorted(set(loaded.labels), key=_natural)
    if len(classes) < 2:
        raise SourceError(f"{data.source}: a single class ({classes[0]!r}); classification needs at least 2")
    splits = _assign_splits(loaded, data)
    digest = _content_hash(loaded, splits, classes)
    if previous and previous["hash"] == digest:
        return Collected(out, previous, skipped=True)
    manifest = _write(out, reader, loaded, splits, classes, digest, data, previous)
    return Collected(out, manifest, skipped=False)


def _natural(name: str):
    return (0, int(name), "") if name.lstrip("-").isdigit() else (1, 0, name)


def _assign_splits(loaded: Loaded, data: Data) -> np.ndarray:
    """Stratified, seeded train/val/test assignment; a source's own test split is kept."""
    # imported here: every Ray Data worker imports this module to decode, and never splits (0.8 s)
    from sklearn.model_selection import train_test_split

    labels = np.asarray(loaded.labels)
    given_test = np.asarray(loaded.test, dtype=bool)
    splits = np.where(given_test, "test", "train").astype(object)
    rest = np.flatnonzero(~given_test)

    def held_out(rows: np.ndarray, fraction: float) -> int:
        # at least one sample per class, which a small dataset's fraction may not reach
        return max(int(np.ceil(fraction * len(rows))), len(set(labels[rows])))

    try:
        if not given_test.any():
            rest, test = train_test_split(
                rest, test_size=held_out(rest, data.test_size), stratify=labels[rest], random_state=data.seed
            )
            splits[test] = "test"
        _, val = train_test_split(
            rest, test_size=held_out(rest, data.val_size), stratify=labels[rest], random_state=data.seed
        )
    except ValueError as exc:
        counts = Counter(labels.tolist())
        rare = min(counts, key=counts.get)
        raise SourceError(
            f"{data.source}: cannot split stratified (class {rare!r} has {counts[rare]} sample(s)): {exc}"
        ) from None
    splits[val] = "val"
    return splits


def _content_hash(loaded: Loaded, splits: np.ndarray, classes: list[str]) -> str:
    """Of every sample, label and split, and of every reject: a new bad record is a new version."""
    digest = hashlib.sha256(json.dumps([FORMAT, classes]).encode())
    for id_, sample, label, split in zip(loaded.ids, loaded.samples, loaded.labels, splits):
        digest.update(f"{id_}\0{label}\0{split}\0{sample.dtype}{sample.shape}\0".encode())
        digest.update(np.ascontiguousarray(sample).tobytes())
    digest.update(json.dumps(loaded.rejects).encode())
    return digest.hexdigest()


def _write(
    out: str, reader: Modality, loaded: Loaded, splits: np.ndarray, classes: list[str], digest: str, data: Data,
    previous: dict | None,
) -> dict:
    """Write into a new private folder (beside `out`, or under the temp dir for a URI), then swap it in
    (a URI: copy it there, the manifest last); the `previous` version is kept beside it, as <out>@<hash>."""
    if is_uri(out):
        fresh = Path(tempfile.mkdtemp(prefix="augtrain-collect-"))
    else:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fresh = Path(tempfile.mkdtemp(prefix=f".{Path(out).name[:64]}.staging-", dir=Path(out).parent))
    index = {name: i for i, name in enumerate(classes)}
    counts = {}
    per_shard = max(1, min(ROWS_PER_SHARD, BYTES_PER_SHARD // max(sample.nbytes for sample in loaded.samples)))
    for split in SPLITS:
        rows = np.flatnonzero(splits == split)
        counts[split] = dict(Counter(loaded.labels[i] for i in rows))
        for shard, start in enumerate(range(0, len(rows), per_shard)):
            chunk = rows[start : start + per_shard]
            table = pa.table(
                {
                    "id": pa.array([loaded.ids[i] for i in chunk], pa.string()),
                    "x": pa.array([np.ascontiguousarray(loaded.samples[i]).tobytes() for i in chunk], pa.binary()),
                    "y": pa.array([index[loaded.labels[i]] for i in chunk], pa.int64()),
                }
            )
            pq.write_table(table, fresh / f"part-{split}-{shard:05d}.parquet")
    quarantine = pa.table(
        {"id": [r[0] for r in loaded.rejects], "reason": [r[1] for r in loaded.rejects]},
        schema=pa.schema([("id", pa.string()), ("reason", pa.string())]),
    )
    pq.write_table(quarantine, fresh / "quarantine.parquet")
    sample = loaded.samples[0]
    manifest = {
        "format": FORMAT,
        "hash": digest,
        "source": data.source,
        "collect": data.model_dump(mode="json", exclude={"path", "normalize"}),
        "schema": {"id": "string", "x": "binary (sample bytes, C order)", "y": "int64 (index into classes)"},
        "kind": reader.kind,
        "shape": list(sample.shape),
        "dtype": str(sample.dtype),
        **reader.manifest_fields(loaded.samples),
        "classes": classes,
        "counts": counts,
        "quarantined": len(loaded.rejects),
        "collected_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (fresh / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if previous:
        keep_version(out, previous)
    elif not is_uri(out) and Path(out).exists():
        Path(out).rmdir()
    if is_uri(out):
        publish(fresh, out, last="manifest.json")
        shutil.rmtree(fresh)
    else:
        fresh.chmod(0o755)  # mkdtemp made it owner-only while it was being written
        fresh.rename(out)
    return manifest


def keep_version(out: str, previous: dict) -> None:
    """Move the dataset at `out` aside as <out>@<hash12>; if that version is kept there already (a source
    that went back and forth), the copy at `out` is the same content and goes."""
    kept = f"{out.rstrip('/')}@{previous['hash'][:12]}"
    existing = read_text(join(kept, "manifest.json"))
    if existing is None:
        move(out, kept)
    elif parse_manifest(existing, join(kept, "manifest.json"))["hash"] == previous["hash"]:
        remove(out)
    else:
        raise SourceError(f"{kept}: exists and holds another version; move it away to collect into {out}")
