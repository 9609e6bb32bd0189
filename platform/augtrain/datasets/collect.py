"""Collect: a raw source -> a versioned Parquet dataset (part-<split>-*.parquet, manifest.json, quarantine.parquet).

The driver lists the source (ids, labels, keys: metadata only) and assigns the splits; Ray Data tasks
on every node decode consecutive parts of the listing and write their shards straight to the output's
staging folder; the driver streams the quarantine and writes the manifest last.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from blake3 import blake3

from augtrain.config.spec import Data
from augtrain.datasets.format import FORMAT, SPLITS, parse_manifest
from augtrain.datasets.sources import Listing, Reader, SourceError
from augtrain.datasets.storage import (
    check_shared,
    file_names,
    is_uri,
    join,
    make_folder,
    move,
    open_output,
    read_text,
    remove,
    subfolders,
    write_table,
    write_text,
)
from augtrain.datasets.tasks import map_chunks
from augtrain.modalities import read_source

# A part is what one Ray Data task decodes and writes: consecutive records of the listing, one shard
# file per split. Ray Data reads a shard as one block and maps a block in one task, so a shard holds at
# most this many bytes of samples (4096 224x224 RGB images would be 600 MB, augmented on one core) and
# at most this many rows (several tasks even for small data).
BYTES_PER_SHARD = 16 * 2**20
ROWS_PER_PART = 1024
TASKS_PER_CPU = 4
PARTS_PER_TASK = 8  # at most: a task ends within seconds, so the last ones leave a CPU idle only that long
SCRATCH = "scratch"  # a reader's copies for the tasks (`Reader.staged`), inside the staging folder while they run
SHUFFLE_PARTS = 16  # records of a table or .npz are shuffled within this many parts (see _parts)


@dataclass(frozen=True)
class Collected:
    path: str  # an absolute folder or a URI (see augtrain.datasets.storage)
    manifest: dict
    skipped: bool
    note: str = ""  # what the source's reader wants the user told (e.g. images resized)
    nodes: int = 0  # how many nodes decoded (0: nothing decoded, the dataset was collected already)


@dataclass(frozen=True)
class Part:
    """Records of a listing decoded and written by one task (see _parts): it carries its own keys only."""

    index: int
    reader: Reader
    keys: list
    ids: list[str]
    splits: list[str]
    ys: list[int]
    seed: int  # of the order its rows are written in


def default_path(data: Data) -> str:
    """Where a job's dataset lives (absolute, or a URI): `data.path`, or else data/<source name>."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(data.source).stem).strip("-.") or "dataset"
    return join(data.path or str(Path("data") / name))


def collect(data: Data, out: str | Path | None = None) -> Collected:
    """Collect `data.source` into `out` (default: the job's dataset dir): list it in this process, decode
    and write its shards in Ray Data tasks; skip if this listing was collected there already."""
    out = join(str(out)) if out else default_path(data)
    existing = read_text(join(out, "manifest.json"))
    if existing is None and (file_names(out) or subfolders(out)):
        raise SourceError(f"{out}: exists and is not a collected dataset; choose another output folder")
    previous = parse_manifest(existing, join(out, "manifest.json")) if existing is not None else None
    owner, listing = read_source(data)
    if not listing.ids:
        raise SourceError(f"{data.source}: no usable samples ({len(listing.rejects)} quarantined)")
    if listing.reader.sample_bytes == 0:
        raise SourceError(f"{data.source}: the samples hold no values (shape {listing.reader.shape})")
    classes = sorted(set(listing.labels), key=_natural)
    if len(classes) < 2:
        raise SourceError(f"{data.source}: a single class ({classes[0]!r}); classification needs at least 2")
    settings = data.model_dump(mode="json", exclude={"path", "normalize"})
    fingerprint = hashlib.sha256(
        json.dumps([FORMAT, owner.kind, settings, listing.fingerprint, listing.rejects]).encode()).hexdigest()
    if previous and previous.get("fingerprint") == fingerprint:
        return Collected(out, previous, skipped=True, note=listing.note)
    splits = assign_splits(listing.labels, listing.given, data)
    fresh = _staging(out)
    try:
        check_shared(fresh)
        scratch = join(fresh, SCRATCH)
        listing.reader.staged(scratch)
        results = _decode_and_write(listing, splits, classes, fresh, data.seed)
        if SCRATCH in subfolders(fresh):
            remove(scratch)
        digest = _content_hash(listing.reader, classes, listing.rejects, results)
        if previous and previous["hash"] == digest:
            remove(fresh)
            return Collected(out, previous, skipped=True, note=listing.note)
        if not any(r["counts"][s] for r in results for s in SPLITS):
            raise SourceError(f"{data.source}: none of {len(listing.ids)} records could be decoded")
        _write_quarantine(fresh, listing.rejects, results)
        manifest = {
            "format": FORMAT,
            "hash": digest,
            "fingerprint": fingerprint,
            "source": data.source,
            "collect": settings,
            "schema": {"id": "string", "x": "binary (sample bytes, C order)", "y": "int64 (index into classes)"},
            "kind": owner.kind,
            "shape": list(listing.reader.shape),
            "dtype": listing.reader.dtype,
            **listing.reader.fields,
            "classes": classes,
            "counts": {s: _class_counts(classes, (r["counts"][s] for r in results)) for s in SPLITS},
            "quarantined": len(listing.rejects) + sum(len(r["rejects"]) for r in results),
            "collected_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _swap_in(fresh, out, manifest, previous)
    except BaseException:
        remove(fresh)
        raise
    return Collected(out, manifest, skipped=False, note=listing.note, nodes=len({r["node"] for r in results}))


def _natural(name: str):
    return (0, int(name), "") if re.fullmatch(r"-?[0-9]+", name) else (1, 0, name)


def _class_counts(classes: list[str], counts) -> dict[str, int]:
    """The parts' {y: count} of one split, summed, by class name."""
    total = Counter()
    for one in counts:
        total.update({classes[int(y)]: n for y, n in one.items()})
    return dict(total)


def assign_splits(labels: list[str], given: list[str], data: Data) -> np.ndarray:
    """Stratified, seeded train/val/test assignment of the records the source leaves open ("" or "train");
    a split the source gives is kept, and one it gives for some records is not drawn from the rest."""
    # imported here: every Ray Data worker imports this module, and never splits (0.8 s)
    from sklearn.model_selection import train_test_split

    labels, splits = np.asarray(labels), np.asarray([g or "train" for g in given], dtype=object)
    rest = np.flatnonzero(splits == "train")

    def held_out(rows: np.ndarray, fraction: float) -> int:
        # at least one sample per class, which a small dataset's fraction may not reach
        return max(int(np.ceil(fraction * len(rows))), len(set(labels[rows])))

    try:
        for split, fraction in (("test", data.test_size), ("val", data.val_size)):
            if split not in given:
                rest, drawn = train_test_split(
                    rest, test_size=held_out(rest, fraction), stratify=labels[rest], random_state=data.seed
                )
                splits[drawn] = split
    except ValueError as exc:
        counts = Counter(labels[rest].tolist())
        rare = min(counts, key=counts.get)
        raise SourceError(
            f"{data.source}: cannot split stratified (class {rare!r} has {counts[rare]} sample(s)): {exc}"
        ) from None
    return splits


def _staging(out: str) -> str:
    """A new private folder where the tasks write the dataset: beside `out` (a folder), or beside it on
    the same storage (a URI), so that it can be swapped in when complete."""
    if is_uri(out):
        staging = f"{out.rstrip('/')}.staging-{uuid.uuid4().hex[:12]}"
        make_folder(staging)
        return staging
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{Path(out).name[:64]}.staging-", dir=Path(out).parent))
    staging.chmod(0o755)  # mkdtemp makes it owner-only; Ray workers of other users may write there
    return str(staging)


def _parts(listing: Listing, splits: np.ndarray, classes: list[str], seed: int) -> list[Part]:
    """The records cut into parts so that every shard mixes the classes (a folder lists them one class after
    another, a table may be sorted by class, and the trainer shuffles only within chunks of batches).

    A reader of one file per record (`Reader.random_access`) reads any order cheaply: the whole source is
    shuffled. One that reads spans of a file (table rows, .npz rows) gives each part an equal share of
    every class: each class's records are shuffled within SHUFFLE_PARTS parts' worth of them and the
    classes interleaved, so a task reads forward through at most that span of each class, its keys
    ascending; write_part writes the rows in a seeded random order.
    """
    index = {name: i for i, name in enumerate(classes)}
    ys = np.array([index[label] for label in listing.labels], dtype=np.int64)
    rows = max(1, min(ROWS_PER_PART, BYTES_PER_SHARD // listing.reader.sample_bytes))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ys)) if listing.reader.random_access else _interleaved(ys, rows, rng)
    parts = []
    for n, start in enumerate(range(0, len(ys), rows)):
        chosen = order[start : start + rows] if listing.reader.random_access else np.sort(order[start : start + rows])
        parts.append(Part(n, listing.reader, [listing.keys[i] for i in chosen], [listing.ids[i] for i in chosen],
                          [splits[i] for i in chosen], ys[chosen].tolist(), seed))
    return parts


def _interleaved(ys: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Record numbers in an order where any `rows` consecutive ones hold each class in proportion: the
    records of each class, shuffled within windows of SHUFFLE_PARTS parts' worth, placed at evenly spaced
    points of [0, 1) and merged by those points."""
    order, points = [], []
    for label in np.unique(ys):
        members = np.flatnonzero(ys == label)
        window = max(1, round(SHUFFLE_PARTS * rows * len(members) / len(ys)))
        order += [rng.permutation(members[start : start + window]) for start in range(0, len(members), window)]
        points.append((np.arange(len(members)) + 0.5) / len(members))
    if not order:
        return np.arange(0)
    return np.concatenate(order)[np.argsort(np.concatenate(points), kind="stable")]


def _decode_and_write(listing: Listing, splits: np.ndarray, classes: list[str], out: str, seed: int) -> list[dict]:
    """The parts decoded and written by Ray Data tasks on any node, about four tasks per CPU of the cluster
    (a task per part cost the driver 17 ms of scheduling each, 10 % of a CPU); their results, in order.
    What is written depends on the parts only, never on how many tasks ran them."""
    import ray

    parts = _parts(listing, splits, classes, seed)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    per_task = min(math.ceil(len(parts) / (TASKS_PER_CPU * cpus)), PARTS_PER_TASK)
    return map_chunks(write_parts, parts, per_task, out=out)


def write_parts(parts: list[Part], out: str) -> list[dict]:
    """Decode parts and write the shard of each split (a Ray Data task); their counts, rejects, digests."""
    return [write_part(part, out) for part in parts]


def write_part(part: Part, out: str) -> dict:
    import ray

    reader = part.reader
    reader.check_unchanged()
    kept, rejects = [], []
    for id_, split, y, read in itertools.zip_longest(part.ids, part.splits, part.ys, reader.read(part.keys)):
        if id_ is None or read is None:  # a reader that yields one result per key finds fewer lines (or more)
            raise SourceError(f"the source changed while it was collected (near record {part.ids[0]}): collect it again")
        sample, reason = read
        if not reason and (tuple(sample.shape) != tuple(reader.shape) or str(sample.dtype) != reader.dtype):
            reason = f"wrong shape: {sample.dtype}{list(sample.shape)} (expected {reader.dtype}{list(reader.shape)})"
        if reason:
            rejects.append((id_, reason))
        else:
            kept.append((split, id_, np.ascontiguousarray(sample).tobytes(), y))
    rows = {split: ([], [], []) for split in SPLITS}
    # BLAKE3: cryptographic like SHA-256, 3-4x faster; SHA-256 of every sample's bytes was a tenth of a task's
    # time per image (benchmarks/RESULTS.md)
    digest = blake3()
    for n in np.random.default_rng([part.seed, part.index]).permutation(len(kept)):
        split, id_, x, y = kept[n]
        digest.update(f"{id_}\0{y}\0{split}\0".encode())
        digest.update(x)
        for column, value in zip(rows[split], (id_, x, y)):
            column.append(value)
    counts = {}
    for split, (ids, xs, ys) in rows.items():
        counts[split] = dict(Counter(ys))
        if ids:
            table = pa.table({"id": pa.array(ids, pa.string()), "x": pa.array(xs, pa.binary()),
                              "y": pa.array(ys, pa.int64())})
            write_table(table, join(out, f"part-{split}-{part.index:05d}.parquet"), dictionary=["y"])
    digest.update(json.dumps(rejects).encode())
    return {"index": part.index, "digest": digest.hexdigest(), "counts": counts, "rejects": rejects,
            "node": ray.get_runtime_context().get_node_id()}


def _content_hash(reader: Reader, classes: list[str], rejects: list[tuple[str, str]], results: list[dict]) -> str:
    """Of every part's samples, labels, splits and rejects (their digests, in order) and of the rejects
    found while listing, and of the reader's manifest fields (an audio dataset's spectrogram settings): a new
    bad record is a new version; how many tasks or nodes ran is not."""
    digest = blake3(json.dumps([FORMAT, classes, reader.dtype, list(reader.shape), reader.fields]).encode())
    for result in results:
        digest.update(result["digest"].encode())
    digest.update(json.dumps(rejects).encode())
    return digest.hexdigest()


def _write_quarantine(out: str, rejects: list[tuple[str, str]], results: list[dict]) -> None:
    """quarantine.parquet: the rejects of the listing, then of each part in order, written in chunks."""
    schema = pa.schema([("id", pa.string()), ("reason", pa.string())])
    with open_output(join(out, "quarantine.parquet")) as file, pq.ParquetWriter(file, schema) as writer:
        for chunk in [rejects] + [r["rejects"] for r in results]:
            if chunk:
                writer.write_table(pa.table({"id": [r[0] for r in chunk], "reason": [r[1] for r in chunk]}, schema=schema))


def _swap_in(fresh: str, out: str, manifest: dict, previous: dict | None) -> None:
    """Put the complete dataset at `out`, the manifest last (whoever sees it sees a complete folder); the
    `previous` version is kept beside it, as <out>@<hash>."""
    if previous:
        keep_version(out, previous)
    elif not is_uri(out) and Path(out).exists():
        Path(out).rmdir()
    if is_uri(out):
        move(fresh, out)
        write_text(join(out, "manifest.json"), json.dumps(manifest, indent=2))
    else:
        Path(fresh, "manifest.json").write_text(json.dumps(manifest, indent=2))
        Path(fresh).rename(out)


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
