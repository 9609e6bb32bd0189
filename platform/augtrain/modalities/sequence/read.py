"""Sequence sources: UCR/UEA archive files (.ts, .tsv) and .npz arrays of series.

Sequences are (T, C) float32, padded at the end with NaN to the longest one: a time step of NaN
is padding, which lets unequal lengths share one shape through every later stage.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Iterator

import numpy as np

from augtrain.config.spec import Data
from augtrain.datasets.files import display, stamp
from augtrain.datasets.sources import (
    MAX_SAMPLE_BYTES,
    Listing,
    NpzRows,
    Reader,
    SourceError,
    npz_header,
    npz_labels,
    npz_members,
    npz_rows,
)
from augtrain.datasets.tasks import map_chunks
from augtrain.modalities.sequence.ucr import (
    ArchiveError,
    BadLine,
    SeriesFile,
    find_dataset,
)

LINES_PER_TASK = 1024  # data lines a task measures (series_files)


def listing(data: Data) -> Listing:
    """`data.source` listed: `ucr:NAME` or a .ts/.tsv file as a stream of lines (SeriesLines), an .npz a
    series at a time (NpzSeries). Labels are needed in every source, prediction inputs too (a .ts file names
    its classes)."""
    if data.source.startswith("ucr:"):
        try:
            files = find_dataset(data.source.removeprefix("ucr:"), data.archive)
        except ArchiveError as exc:
            raise SourceError(str(exc)) from None
        return series_files(list(map(str, files)), test=str(files[1]))
    if Path(data.source).suffix == ".npz":
        return npz_series(data.source)
    return series_files([data.source])


def fields(channels: int, lengths: list[int]) -> dict:
    """The manifest fields of series: their channels and range of lengths."""
    return {"channels": channels, "lengths": {"min": min(lengths), "max": max(lengths)} if lengths else {}}


def series_files(files: list[str], test: str | None = None) -> Listing:
    """The series of `.ts`/`.tsv` files: their data lines found here, each parsed in a task to be checked and
    measured (`measure_lines`, its values dropped), and parsed again by the task that decodes it
    (SeriesLines); bad lines are quarantined with their line (the series of `test` kept to the test split)."""
    try:
        opened = [SeriesFile.open(f) for f in files]
        lines = [(n, line, offset) for n, file in enumerate(opened) for line, offset in file.data_lines()]
    except ArchiveError as exc:
        raise SourceError(str(exc)) from None
    if len(lines) <= LINES_PER_TASK:  # one task's worth: measured here, without a Ray Data execution
        measured = measure_lines(lines, opened)
    else:
        measured = map_chunks(measure_lines, lines, LINES_PER_TASK, files=opened)
    entries = [(n, line, offset, *sizes) for (n, line, offset), sizes in zip(lines, measured)]
    names = [display(Path(f).name) for f in files]
    channels = max((entry[5] for entry in entries if not entry[6]), default=1)
    out, lengths = Listing(None), []
    for n, line, offset, label, length, width, reason in entries:
        reason = reason or (f"wrong channels: {width} in a {channels}-channel dataset" if width != channels else "")
        if reason:
            out.rejects.append((f"{names[n]}:{line}", reason))
        else:
            out.add(f"{names[n]}:{line}", label, (n, line, offset), "test" if files[n] == test else "")
            lengths.append(length)
    if not out.ids and not out.rejects:
        raise SourceError(f"{files[0]}: no series found")
    out.reader = SeriesLines(opened, (max(lengths, default=0), channels), fields(channels, lengths))
    stamps = [[f, out.reader.listed[f]] for f in files]  # the stamps the tasks check
    out.fingerprint = hashlib.sha256(json.dumps(stamps + [test]).encode()).hexdigest()
    return out


def measure_lines(lines: list, files: list[SeriesFile]) -> list[list]:
    """[label, length, channels, why it is quarantined or ""] of each data line (file number, line, byte
    offset) of `files`, ascending (a task of `series_files`)."""
    out = []
    try:
        for n, group in itertools.groupby(lines, key=lambda key: int(key[0])):
            for parsed in files[n].rows_at([(int(line), int(offset)) for _, line, offset in group]):
                if isinstance(parsed, BadLine):
                    out.append(["", 0, 0, str(parsed)])
                else:
                    values, label = parsed
                    out.append([label, len(values), values.shape[1], problem(values, values.shape[1])])
    except ArchiveError as exc:
        raise SourceError(str(exc)) from None
    return out


class SeriesLines(Reader):
    """Series read from their files' lines by the tasks: gaps interpolated, NaN-padded to the longest.
    A key is (file number, line, byte offset)."""

    def __init__(self, files: list[SeriesFile], shape: tuple[int, int], fields: dict):
        self.files, self.shape, self.fields = files, shape, fields
        self.listed = {file.path: stamp(file.path) for file in files}

    def read(self, keys: list) -> Iterator[tuple[np.ndarray | None, str]]:
        for n, group in itertools.groupby(keys, key=lambda key: key[0]):
            for parsed in self.files[n].rows_at([(line, offset) for _, line, offset in group]):
                yield (None, str(parsed)) if isinstance(parsed, BadLine) else padded(parsed[0], self.shape)


def npz_series(source: str) -> Listing:
    """An .npz's series listed one at a time (each checked and measured here, its values dropped) and read
    again by the tasks (NpzSeries): `x` as (N, T) or (N, T, C), NaN-padded at the end; or series of
    different lengths stored flat, `values` as (sum of T_i,) or (sum of T_i, C) with their `lengths` (N,)."""
    members = npz_members(source)
    flat = {"values", "lengths"} <= members
    missing = sorted({"values", "lengths", "y"} - members if flat else {"x", "y"} - members)
    if missing:
        raise SourceError(f"{source}: missing array(s) {missing} (expected x+y, or values+lengths+y)")
    labels = npz_labels(source, "y", "values" if flat else "x")
    if flat:
        lengths = npz_labels(source, "lengths", "values")
        shape, _ = npz_header(source, "values", None)
        if len(shape) not in (1, 2) or len(lengths) != len(labels) or not all(
            type(n) is int and n >= 0 for n in lengths
        ):
            raise SourceError(f"{source}: expected values (sum of T_i[, C]) and lengths (N,) of whole numbers >= 0")
        if sum(lengths) != shape[0]:
            raise SourceError(f"{source}: lengths add up to {sum(lengths)} but values has {shape[0]} steps")
        keys = [("values", int(start), n) for start, n in zip(np.cumsum([0, *lengths[:-1]]), lengths)]
    else:
        shape, _ = npz_header(source, "x", len(labels))
        if len(shape) not in (2, 3):
            raise SourceError(f"{source}: x has shape {shape}; expected (N, T) or (N, T, C)")
        keys = [("x", i, 1) for i in range(len(labels))]
    channels = shape[-1] if len(shape) == (2 if flat else 3) else 1
    name, out, measured = display(Path(source).name), Listing(None), []
    longest, fit = MAX_SAMPLE_BYTES // (4 * channels), []  # steps of one float32 series: a flat run may claim any
    for i, key in enumerate(keys):
        if flat and key[2] > longest:
            out.rejects.append((f"{name}[{i}]", f"too long: {key[2]:,} steps (at most {longest:,})"))
        else:
            fit.append(i)
    for i, rows in zip(fit, npz_rows(source, [keys[i] for i in fit])):
        series = npz_one(rows, flat)
        if reason := problem(series, channels):
            out.rejects.append((f"{name}[{i}]", reason))
        elif out.add(f"{name}[{i}]", labels[i], keys[i]):
            measured.append(len(series))
    out.reader = NpzSeries(source, flat, (max(measured, default=0), channels), fields(channels, measured))
    out.fingerprint = hashlib.sha256(f"{shape}{out.reader.listed[source]}".encode()).hexdigest()
    return out


def npz_one(rows: np.ndarray, flat: bool) -> np.ndarray:
    """One series of an .npz as (T, C) float32, its trailing steps of NaN dropped: a row of x, or a run of
    the flat values."""
    series = (rows if flat else rows[0]).astype(np.float32)
    series = series[:, None] if series.ndim == 1 else series
    steps = np.flatnonzero(~np.isnan(series).all(1))
    return series[: steps[-1] + 1] if len(steps) else series[:0]


class NpzSeries(NpzRows):
    """Series read from an .npz by the tasks (keys: (array, first row, rows)): gaps interpolated, NaN-padded
    to the longest."""

    def __init__(self, source: str, flat: bool, shape: tuple[int, int], fields: dict):
        super().__init__(source, ("values",) if flat else ("x",))
        self.flat, self.shape, self.fields = flat, shape, fields

    def read(self, keys: list) -> Iterator[tuple[np.ndarray | None, str]]:
        for rows in self.rows(keys):
            yield padded(npz_one(rows, self.flat), self.shape)


def problem(series: np.ndarray, channels: int) -> str:
    """Why a series (T, C) is quarantined, or ""."""
    if series.shape[1] != channels:
        return f"wrong channels: {series.shape[1]} in a {channels}-channel dataset"
    if np.isinf(series).any():
        return "infinite value"
    if len(series) == 0 or np.isnan(series).all(0).any():
        return "a channel with no values"
    return ""


def padded(series: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray | None, str]:
    """A (T, C) series with its gaps interpolated and NaN-padded to `shape`, or (None, why it is quarantined)."""
    if reason := problem(series, shape[1]):
        return None, reason
    out = np.full(shape, np.nan, dtype=np.float32)
    out[: len(series)] = interpolate(series)
    return out, ""


def read_sent(value, shape: list[int]) -> tuple[np.ndarray | None, str]:
    """A series sent to a model of sample shape (T, C) as nested numbers, (T) or (T x C), null for a missing
    value ("?" in a .ts file) -> (the series as a file's is read, "") or (None, the reason a file's would be
    quarantined for, or that it is longer than the T steps of the model's longest training series)."""
    steps, channels = shape
    if not isinstance(value, list) or not value:
        return None, "not a series: expected a non-empty list of numbers (T) or of lists of numbers (T x C)"
    if len(value) > steps:  # before any list is built from it
        return None, f"too long: {len(value)} steps; the model takes at most {steps} (its longest training series)"
    rows = value if all(isinstance(row, list) for row in value) else [[x] for x in value]
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        return None, f"wrong shape: steps of {len(widths)} different lengths"
    if widths != {channels}:
        return None, f"wrong channels: {widths.pop()} in a {channels}-channel model"
    flat = [x for row in rows for x in row]
    if not all(x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)) for x in flat):
        return None, "missing or non-numeric value: expected numbers (or null for a missing one)"
    try:
        series = np.array([np.nan if x is None else x for x in flat], dtype=np.float32).reshape(len(rows), channels)
    except OverflowError:  # an integer beyond float range
        return None, "infinite value"
    return padded(series, series.shape)


def interpolate(series: np.ndarray) -> np.ndarray:
    """Missing values (NaN) inside a series, linearly interpolated per channel."""
    if not np.isnan(series).any():
        return series
    steps = np.arange(len(series))
    filled = series.copy()
    for c in range(series.shape[1]):
        known = ~np.isnan(series[:, c])
        filled[:, c] = np.interp(steps, steps[known], series[known, c])
    return filled
