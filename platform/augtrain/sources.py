"""Raw data sources: each turns what the user has into labelled uint8/float arrays plus rejects."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from augtrain.spec import Data
from augtrain.ucr import ArchiveError, find_dataset, read_series

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class SourceError(ValueError):
    """The source as a whole cannot be collected (missing, empty, malformed)."""


@dataclass
class Loaded:
    """What a source yields: good samples (same shape) and the quarantined ones with reasons.

    Sequences are (T, C) float32, padded at the end with NaN to the longest one: a time step of
    NaN is padding, which lets unequal lengths share one shape through every later stage.
    """

    kind: str = "image"
    ids: list[str] = field(default_factory=list)
    samples: list[np.ndarray] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    test: list[bool] = field(default_factory=list)  # True where the source itself puts a sample in test
    rejects: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)

    def add(self, id_: str, sample: np.ndarray, label, test: bool = False) -> None:
        self.ids.append(id_)
        self.samples.append(sample)
        self.labels.append(str(label))
        self.test.append(test)


def load_source(data: Data, labelled: bool = True) -> Loaded:
    """Read `data.source` with the reader its name or suffix selects.

    `labelled=False` (prediction inputs) lets a table go without its label column.
    """
    if data.source == "sklearn-digits":
        return _digits()
    if data.source.startswith("ucr:"):
        return _ucr(data.source.removeprefix("ucr:"), data.archive)
    path = Path(data.source)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if path.is_dir():
        return _image_folder(path, data)
    if path.suffix == ".npz":
        return _npz_sequences(path) if data.kind == "sequence" else _npz(path)
    if path.suffix in {".csv", ".parquet"}:
        return _table(path, data, labelled)
    if path.suffix in {".ts", ".tsv"}:
        return _series_files([path])
    raise SourceError(f"{path}: unknown source type (expected a folder, .npz, .csv, .parquet, .ts or .tsv)")


def _digits() -> Loaded:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 17 grey levels (0..16) map one-to-one onto uint8, the dtype image augmentation expects.
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    out = Loaded()
    for i, (image, label) in enumerate(zip(images, digits.target)):
        out.add(f"digits/{i}", image, label)
    return out


def _image_folder(root: Path, data: Data) -> Loaded:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.parent != root)
    if not files:
        raise SourceError(f"{root}: no images found (expected one sub-folder per class)")
    labels = {p: p.relative_to(root).parts[0] for p in files}
    return _images(files, labels, root, data)


def _images(files: list[Path], labels: dict[Path, str], root: Path, data: Data) -> Loaded:
    out = Loaded()
    headers = {}
    for path in files:
        reason, header = _read_header(path, data.max_pixels)
        if reason:
            out.rejects.append((str(path.relative_to(root)), reason))
        else:
            headers[path] = header
    if not headers:
        raise SourceError(f"{root}: none of {len(files)} files is a readable image")
    channels = data.channels or Counter(c for c, _ in headers.values()).most_common(1)[0][0]
    size = tuple(data.resize[::-1]) if data.resize else Counter(s for _, s in headers.values()).most_common(1)[0][0]
    for path in headers:
        id_ = str(path.relative_to(root))
        image, reason = read_image(path, data, channels, size)
        if reason:
            out.rejects.append((id_, reason))
        else:
            out.add(id_, image, labels[path])
    return out


def read_image(path: Path, data: Data, channels: int, size: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
    """One file as an (H, W, C) uint8 image of `size` (W, H) and `channels`, or (None, why it is quarantined)."""
    reason, header = _read_header(path, data.max_pixels)
    if reason:
        return None, reason
    image_channels, image_size = header
    if image_channels > channels:
        return None, f"wrong mode: {image_channels}-channel image in a {channels}-channel dataset"
    if image_size != size and not data.resize:
        return None, f"wrong shape: {image_size[0]}x{image_size[1]} (expected {size[0]}x{size[1]})"
    try:
        return _decode(path, channels, size), None
    except (OSError, SyntaxError, ValueError) as exc:
        return None, f"truncated or corrupt: {exc}"


def _read_header(path: Path, max_pixels: int):
    """(reason, None) for a file to quarantine, else (None, (channels, (width, height)))."""
    if path.stat().st_size == 0:
        return "empty file (0 bytes)", None
    try:
        with Image.open(path) as image:
            mode, size = image.mode, image.size
    except Image.DecompressionBombError as exc:
        return f"decompression bomb: {exc}", None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        return f"not a readable image: {exc}", None
    if size[0] * size[1] > max_pixels:
        return f"decompression bomb: {size[0]}x{size[1]} pixels exceeds data.max_pixels={max_pixels}", None
    channels = {"1": 1, "L": 1, "P": 3, "RGB": 3, "RGBA": 3}.get(mode)
    if channels is None:
        return f"wrong mode: {mode} (expected grey or RGB)", None
    return None, (channels, size)


def _decode(path: Path, channels: int, size: tuple[int, int]) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != size:
            image = image.resize(size, Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    return array.reshape(size[1], size[0], channels)


def _npz_arrays(path: Path, ragged: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`x` and `y` of an .npz; `ragged` allows an object array of variable-length series (pickled)."""
    with np.load(path, allow_pickle=ragged) as archive:
        missing = {"x", "y"} - set(archive.files)
        if missing:
            raise SourceError(f"{path}: missing array(s) {sorted(missing)} (expected x and y)")
        x, y = archive["x"], archive["y"]
    if len(x) != len(y):
        raise SourceError(f"{path}: x has {len(x)} samples but y has {len(y)}")
    return x, y


def _npz(path: Path) -> Loaded:
    x, y = _npz_arrays(path)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise SourceError(f"{path}: x has shape {x.shape}; expected (N, H, W) or (N, H, W, C)")
    x = x if x.dtype == np.uint8 else x.astype(np.float32)
    out = Loaded()
    for i, (sample, label) in enumerate(zip(x, y)):
        if np.isfinite(sample).all():
            out.add(f"{path.name}[{i}]", sample, label)
        else:
            out.rejects.append((f"{path.name}[{i}]", "non-finite values (NaN or inf)"))
    return out


def _ucr(name: str, archive: str | None) -> Loaded:
    """A UCR/UEA dataset: its TRAIN file becomes train+val, its TEST file the test split."""
    try:
        files = find_dataset(name, archive)
    except ArchiveError as exc:
        raise SourceError(str(exc)) from None
    return _series_files(list(files), test=files[1])


def _series_files(files: list[Path], test: Path | None = None) -> Loaded:
    """The series of `.ts`/`.tsv` files; those of `test` keep to the test split."""
    try:
        series = [read_series(f) for f in files]
    except ArchiveError as exc:
        raise SourceError(str(exc)) from None
    ids, values, labels, in_test = [], [], [], []
    for path, part in zip(files, series):
        ids += [f"{path.name}:{line}" for line in part.lines]
        values += part.values
        labels += part.labels
        in_test += [path == test] * len(part.values)
    return _sequences(ids, values, labels, in_test)


def _npz_sequences(path: Path) -> Loaded:
    """`x` as (N, T) or (N, T, C), NaN-padded at the end, or an object array of (T_i[, C]) arrays."""
    x, y = _npz_arrays(path, ragged=True)
    values = []
    for i, series in enumerate(x):
        series = np.asarray(series, dtype=np.float32)
        series = series[:, None] if series.ndim == 1 else series
        if series.ndim != 2:
            raise SourceError(f"{path}: x[{i}] has shape {series.shape}; expected (T,) or (T, C)")
        steps = np.flatnonzero(~np.isnan(series).all(1))
        values.append(series[: steps[-1] + 1] if len(steps) else series[:0])
    return _sequences([f"{path.name}[{i}]" for i in range(len(x))], values, list(y), [False] * len(x))


def _sequences(ids: list[str], values: list[np.ndarray], labels: list, test: list[bool]) -> Loaded:
    """Fill missing values by linear interpolation, then pad every series with NaN to the longest."""
    if not values:
        raise SourceError("no series found")
    out = Loaded(kind="sequence")
    good = []
    channels = max(v.shape[1] for v in values)
    for id_, series, label, in_test in zip(ids, values, labels, test):
        if series.shape[1] != channels:
            out.rejects.append((id_, f"{series.shape[1]} channel(s) in a {channels}-channel dataset"))
        elif np.isinf(series).any():
            out.rejects.append((id_, "infinite value"))
        elif len(series) == 0 or np.isnan(series).all(0).any():
            out.rejects.append((id_, "a channel with no values"))
        else:
            good.append((id_, _interpolate(series), label, in_test))
    longest = max((len(g[1]) for g in good), default=0)
    for id_, series, label, in_test in good:
        padded = np.full((longest, channels), np.nan, dtype=np.float32)
        padded[: len(series)] = series
        out.add(id_, padded, label, in_test)
    return out


def _interpolate(series: np.ndarray) -> np.ndarray:
    """Missing values (NaN) inside a series, linearly interpolated per channel."""
    if not np.isnan(series).any():
        return series
    steps = np.arange(len(series))
    filled = series.copy()
    for c in range(series.shape[1]):
        known = ~np.isnan(series[:, c])
        filled[:, c] = np.interp(steps, steps[known], series[known, c])
    return filled


def _table(path: Path, data: Data, labelled: bool) -> Loaded:
    table = pacsv.read_csv(path) if path.suffix == ".csv" else pq.read_table(path)
    columns = table.column_names
    if not labelled and data.label_column not in columns:
        table = table.append_column(data.label_column, pa.array([""] * len(table)))
        columns = table.column_names
    if data.label_column not in columns:
        raise SourceError(f"{path}: no label column {data.label_column!r} (columns: {', '.join(columns)})")
    rows = table.to_pylist()
    # CSV rows are named by file line (the header is line 1), Parquet rows by index
    where, first_line = ("line", 2) if path.suffix == ".csv" else ("row", 0)
    if data.image_column:
        if data.image_column not in columns:
            raise SourceError(f"{path}: no image column {data.image_column!r}")
        files = [path.parent / str(row[data.image_column]) for row in rows]
        labels = {f: row[data.label_column] for f, row in zip(files, rows)}
        missing = [(str(f.relative_to(path.parent)), "file not found") for f in files if not f.is_file()]
        loaded = _images([f for f in files if f.is_file()], labels, path.parent, data)
        loaded.rejects[:0] = missing
        return loaded
    features = data.feature_columns or [c for c in columns if c != data.label_column]
    unknown = sorted(set(features) - set(columns))
    if unknown:
        raise SourceError(f"{path}: unknown feature column(s) {unknown}")
    shape = data.image_shape or (1, len(features), 1)
    if int(np.prod(shape)) != len(features):
        raise SourceError(f"{path}: data.image_shape {shape} does not hold {len(features)} features")
    out = Loaded()
    for line, row in enumerate(rows, start=first_line):
        id_ = f"{path.name}:{line}"
        values = [_number(row[c]) for c in features]
        bad = next((c for c, v in zip(features, values) if v is None), None)
        if bad is not None or row[data.label_column] is None:
            reason = f"{where} {line}: missing or non-numeric value in column {bad or data.label_column}"
            out.rejects.append((id_, reason))
        else:
            out.add(id_, np.asarray(values, dtype=np.float32).reshape(shape), row[data.label_column])
    return out


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None
