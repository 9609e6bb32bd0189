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
    Listing,
    Loaded,
    Reader,
    SourceError,
    held,
    npz_arrays,
)
from augtrain.modalities.sequence.ucr import (
    ArchiveError,
    BadLine,
    SeriesFile,
    find_dataset,
)


def listing(data: Data) -> Listing:
    """`data.source` listed: `ucr:NAME` or a .ts/.tsv file as a stream of lines (SeriesLines), an .npz loaded
    whole. Labels are needed in every source, prediction inputs too (a .ts file names its classes)."""
    if data.source.startswith("ucr:"):
        try:
            files = find_dataset(data.source.removeprefix("ucr:"), data.archive)
        except ArchiveError as exc:
            raise SourceError(str(exc)) from None
        return series_files(list(map(str, files)), test=str(files[1]))
    if Path(data.source).suffix == ".npz":
        loaded = npz_sequences(data.source)
        return held(loaded, fields(loaded.samples) if loaded.samples else {})
    return series_files([data.source])


def fields(samples: list[np.ndarray]) -> dict:
    """The manifest fields of series: their channels and range of lengths."""
    lengths = [int((~np.isnan(s[:, 0])).sum()) for s in samples]
    return {"channels": samples[0].shape[1], "lengths": {"min": min(lengths), "max": max(lengths)}}


def series_files(files: list[str], test: str | None = None) -> Listing:
    """The series of `.ts`/`.tsv` files listed a line at a time (the series of `test` kept to the test split):
    each line is parsed here to be checked and measured, its values dropped, and parsed again by the task
    that decodes it (SeriesLines); bad lines are quarantined with their line."""
    entries = []  # (file, line, offset, label, length, channels, reason) of each data line, its values dropped
    try:
        opened = [SeriesFile.open(f) for f in files]
        for n, file in enumerate(opened):
            for line, offset, parsed in file.rows():
                if isinstance(parsed, BadLine):
                    entries.append((n, line, offset, "", 0, 0, str(parsed)))
                else:
                    values, label = parsed
                    entries.append((n, line, offset, label, len(values), values.shape[1], problem(values, values.shape[1])))
    except ArchiveError as exc:
        raise SourceError(str(exc)) from None
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
    longest = max(lengths, default=0)
    lengths = {"min": min(lengths), "max": longest} if lengths else {}
    out.reader = SeriesLines(opened, (longest, channels), {"channels": channels, "lengths": lengths})
    out.fingerprint = hashlib.sha256(json.dumps([[f, stamp(f)] for f in files] + [test]).encode()).hexdigest()
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
                if isinstance(parsed, BadLine):  # the file changed since it was listed
                    yield None, str(parsed)
                    continue
                padded = np.full(self.shape, np.nan, dtype=np.float32)
                padded[: len(parsed[0])] = interpolate(parsed[0])
                yield padded, ""


def npz_sequences(path: str) -> Loaded:
    """`x` as (N, T) or (N, T, C), NaN-padded at the end; or variable-length series stored flat, `values`
    as (sum of T_i,) or (sum of T_i, C) with their `lengths` (N,)."""
    arrays = npz_arrays(path, [["values", "lengths", "y"], ["x", "y"]])
    if "values" in arrays:
        series = split_flat(path, arrays["values"], arrays["lengths"])
    elif arrays["x"].ndim in (2, 3):
        series = list(arrays["x"])
    else:
        raise SourceError(f"{path}: x has shape {arrays['x'].shape}; expected (N, T) or (N, T, C)")
    values = []
    for one in series:
        one = one.astype(np.float32)
        one = one[:, None] if one.ndim == 1 else one
        steps = np.flatnonzero(~np.isnan(one).all(1))
        values.append(one[: steps[-1] + 1] if len(steps) else one[:0])
    ids = [f"{display(Path(path).name)}[{i}]" for i in range(len(values))]
    return sequences(ids, values, list(arrays["y"]), [False] * len(values))


def split_flat(path: Path, values: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    if values.ndim not in (1, 2) or lengths.ndim != 1 or lengths.dtype.kind not in "iu" or (lengths < 0).any():
        raise SourceError(f"{path}: expected values (sum of T_i[, C]) and lengths (N,) of whole numbers >= 0")
    if int(lengths.sum()) != len(values):
        raise SourceError(f"{path}: lengths add up to {int(lengths.sum())} but values has {len(values)} steps")
    return np.split(values, np.cumsum(lengths)[:-1])


def problem(series: np.ndarray, channels: int) -> str:
    """Why a series (T, C) is quarantined, or ""."""
    if series.shape[1] != channels:
        return f"wrong channels: {series.shape[1]} in a {channels}-channel dataset"
    if np.isinf(series).any():
        return "infinite value"
    if len(series) == 0 or np.isnan(series).all(0).any():
        return "a channel with no values"
    return ""


def sequences(ids: list[str], values: list[np.ndarray], labels: list, test: list[bool]) -> Loaded:
    """Fill missing values by linear interpolation, then pad every series with NaN to the longest."""
    if not values:
        raise SourceError("no series found")
    out = Loaded()
    good = []
    channels = max(v.shape[1] for v in values)
    for id_, series, label, in_test in zip(ids, values, labels, test):
        if reason := problem(series, channels):
            out.rejects.append((id_, reason))
        else:
            good.append((id_, interpolate(series), label, in_test))
    longest = max((len(g[1]) for g in good), default=0)
    for id_, series, label, in_test in good:
        padded = np.full((longest, channels), np.nan, dtype=np.float32)
        padded[: len(series)] = series
        out.add(id_, padded, label, in_test)
    return out


def read_sent(value, channels: int) -> tuple[np.ndarray | None, str]:
    """A series sent to a served model as nested numbers, (T) or (T x C), null for a missing value ("?" in a
    .ts file) -> (the series as a file's is read, "") or (None, the reason a file's would be quarantined for)."""
    if not isinstance(value, list) or not value:
        return None, "not a series: expected a non-empty list of numbers (T) or of lists of numbers (T x C)"
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
    loaded = sequences(["sent"], [series], [""], [False])
    return (None, loaded.rejects[0][1]) if loaded.rejects else (loaded.samples[0], "")


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
