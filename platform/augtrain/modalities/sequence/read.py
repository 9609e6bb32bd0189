"""Sequence sources: UCR/UEA archive files (.ts, .tsv) and .npz arrays of series.

Sequences are (T, C) float32, padded at the end with NaN to the longest one: a time step of NaN
is padding, which lets unequal lengths share one shape through every later stage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from augtrain.config.spec import Data
from augtrain.datasets.files import display
from augtrain.datasets.sources import Loaded, SourceError, npz_arrays
from augtrain.modalities.sequence.ucr import ArchiveError, find_dataset, read_series


def load(data: Data, labelled: bool = True) -> Loaded:
    """Read `data.source`: `ucr:NAME`, a .ts/.tsv file, or an .npz (labels are optional in .ts inputs)."""
    if data.source.startswith("ucr:"):
        return ucr(data.source.removeprefix("ucr:"), data.archive)
    source = data.source  # a path or a URI
    return npz_sequences(source) if Path(source).suffix == ".npz" else series_files([source])


def ucr(name: str, archive: str | None) -> Loaded:
    """A UCR/UEA dataset: its TRAIN file becomes train+val, its TEST file the test split."""
    try:
        files = find_dataset(name, archive)
    except ArchiveError as exc:
        raise SourceError(str(exc)) from None
    return series_files(list(files), test=files[1])


def series_files(files: list[Path | str], test: Path | None = None) -> Loaded:
    """The series of `.ts`/`.tsv` files (bad data lines quarantined); those of `test` keep to the test split."""
    try:
        series = [read_series(f) for f in files]
    except ArchiveError as exc:
        raise SourceError(str(exc)) from None
    ids, values, labels, in_test, rejects = [], [], [], [], []
    for path, part in zip(files, series):
        name = display(Path(path).name)
        ids += [f"{name}:{line}" for line in part.lines]
        values += part.values
        labels += part.labels
        in_test += [path == test] * len(part.values)
        rejects += [(f"{name}:{line}", reason) for line, reason in part.rejects]
    return sequences(ids, values, labels, in_test, rejects)


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


def sequences(ids: list[str], values: list[np.ndarray], labels: list, test: list[bool],
               rejects: list[tuple[str, str]] = ()) -> Loaded:
    """Fill missing values by linear interpolation, then pad every series with NaN to the longest."""
    if not values and not rejects:
        raise SourceError("no series found")
    out = Loaded(rejects=list(rejects))
    good = []
    channels = max((v.shape[1] for v in values), default=1)
    for id_, series, label, in_test in zip(ids, values, labels, test):
        if series.shape[1] != channels:
            out.rejects.append((id_, f"wrong channels: {series.shape[1]} in a {channels}-channel dataset"))
        elif np.isinf(series).any():
            out.rejects.append((id_, "infinite value"))
        elif len(series) == 0 or np.isnan(series).all(0).any():
            out.rejects.append((id_, "a channel with no values"))
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
