"""Where runs and datasets are kept: a folder, or a URI that pyarrow's filesystems open (s3://, gs://,
abfs://, hdfs://, file://).

Ray Train writes checkpoints straight to the storage from whichever node a worker runs on, and Ray
Data reads datasets from it. The driver's own files of a run (spec, metrics, bundle, report), and a
dataset being collected, are written to a local staging folder and copied to the storage
(`publish`); on a plain folder the two are the same.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from augtrain.datasets.locations import check_name, is_uri
from augtrain.errors import BadInput


@functools.lru_cache(maxsize=64)
def _from_uri(location: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(location)  # on s3:// a bucket-region lookup: once per location


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem of a folder or URI and the path in it."""
    if is_uri(location):
        return _from_uri(location)
    return pafs.LocalFileSystem(), str(Path(location).resolve())


def join(location: str, *parts: str) -> str:
    if is_uri(location):
        return "/".join([location.rstrip("/"), *parts])
    return str(Path(location, *parts).resolve())


def child(location: str, name: str, what: str = "name") -> str:
    """`location/name` for a `name` from outside, checked by `check_name`."""
    return join(location, check_name(name, what))


def _names(location: str, kind: pafs.FileType) -> list[str]:
    """The names of the entries of `kind` in `location`, sorted; none if it does not exist."""
    fs, path = filesystem(location)
    found = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(info.base_name for info in found if info.type == kind)


def subfolders(location: str) -> list[str]:
    return _names(location, pafs.FileType.Directory)


def file_names(location: str) -> list[str]:
    return _names(location, pafs.FileType.File)


def open_input(location: str) -> pa.NativeFile:
    """The file at `location` opened for reading (random access: Parquet)."""
    fs, path = filesystem(location)
    return fs.open_input_file(path)


def read_text(location: str) -> str | None:
    """The text of the file at `location`, or None if there is none."""
    fs, path = filesystem(location)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        return stream.read().decode()


def open_output(location: str) -> pa.NativeFile:
    """A new file at `location` (replacing one there) opened for writing."""
    fs, path = filesystem(location)
    return fs.open_output_stream(path)


def write_text(location: str, text: str) -> None:
    with open_output(location) as stream:
        stream.write(text.encode())


def write_table(table: pa.Table, location: str, dictionary: list[str]) -> None:
    """`table` as Parquet at `location`, dictionary-encoding only the `dictionary` columns (pyarrow's default,
    every column, hashes each sample's bytes for a dictionary it then drops: 60 % of a shard's write time)."""
    with open_output(location) as stream:
        pq.write_table(table, stream, use_dictionary=dictionary)


def make_folder(location: str) -> None:
    fs, path = filesystem(location)
    fs.create_dir(path, recursive=True)


def staging(location: str) -> Path:
    """The local folder where a run or dataset kept at `location` is written: the folder itself if local,
    else a new private folder (owner-only, unpredictable name) under the temp dir, never one that a
    link planted there could redirect, removed when this process exits (what it holds is published to
    `location`)."""
    if not is_uri(location):
        return Path(location)
    name = check_name(location.rstrip("/").rsplit("/", 1)[-1], "the last part of the URI")
    folder = tempfile.mkdtemp(prefix="augtrain-staging-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return Path(folder, name)


def publish(local: Path, location: str, last: str | None = None) -> None:
    """Copy the files of `local` into `location` (nothing to do when they are the same folder); the file
    named `last` goes after all others (a manifest: whoever sees it sees a complete folder)."""
    if not is_uri(location):
        return
    if last is None:
        copy_folder(local, location)
        return
    fs, path = filesystem(location)
    fs.create_dir(path, recursive=True)
    for file in sorted(local.iterdir(), key=lambda file: file.name == last):
        if file.is_dir():  # a run's model/, train/
            copy_folder(file, join(location, file.name))
        else:
            pafs.copy_files(str(file), f"{path}/{file.name}", source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def copy_folder(local: Path, location: str) -> None:
    """Copy the files of the local folder `local` into `location` (a folder or URI), created if need be."""
    fs, path = filesystem(location)
    fs.create_dir(path, recursive=True)
    pafs.copy_files(str(local), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def move(location: str, destination: str) -> None:
    """Move a folder to another place on the same storage."""
    fs, path = filesystem(location)
    _, target = filesystem(destination)
    if isinstance(fs, pafs.LocalFileSystem):
        fs.move(path, target)
        return
    pafs.copy_files(path, target, source_filesystem=fs, destination_filesystem=fs)
    fs.delete_dir(path)


def remove(location: str) -> None:
    """Delete a folder and everything in it."""
    fs, path = filesystem(location)
    fs.delete_dir(path)


def is_folder(location: str, path: str) -> bool:
    """Whether `path`, a path in the filesystem of `location` (as Ray reports checkpoints), is a folder."""
    fs, _ = filesystem(location)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def fetch(location: str, path: str, local: Path) -> None:
    """Copy the folder `path` of the filesystem of `location` (as Ray reports checkpoints) into `local`."""
    fs, _ = filesystem(location)
    local.mkdir(parents=True, exist_ok=True)
    pafs.copy_files(path, str(local), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())


class StorageError(BadInput):
    """A storage location that cannot serve the job (a node-local path on a multi-node cluster)."""


def check_shared(*locations: str | Path) -> None:
    """On a multi-node Ray cluster every node must see `locations` (checkpoints, datasets, a dataset being
    collected): a node-local path is refused before anything is written there."""
    import os
    import time

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node["Alive"]]
    if len(nodes) < 2:
        return
    sees = ray.remote(num_cpus=0)(os.path.exists)
    for folder in [Path(location) for location in locations if not is_uri(str(location))]:
        marker = folder / f".visible-{os.getpid()}-{time.time_ns()}"
        marker.touch()
        try:
            affinity = [NodeAffinitySchedulingStrategy(node["NodeID"], soft=False) for node in nodes]
            seen = ray.get([sees.options(scheduling_strategy=a).remote(str(marker)) for a in affinity])
            blind = [node["NodeManagerAddress"] for node, visible in zip(nodes, seen) if not visible]
        finally:
            marker.unlink()
        if blind:
            raise StorageError(
                f"{folder} is not visible from node(s) {', '.join(blind)}: on a multi-node cluster run.storage_path "
                f"and data.path must be a shared filesystem that every node mounts at the same path (or a URI)"
            )
