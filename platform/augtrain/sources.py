"""Raw data sources: each turns what the user has into labelled uint8/float arrays plus rejects.

Every source is untrusted. A record that cannot be used becomes a quarantine row (id, reason), the
reason being `kind` or `kind: detail` (summaries group by kind); a source that cannot be read as a
whole is one SourceError naming the file and, where there is one, the line. Nothing is unpickled.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from augtrain.files import display, inside, open_regular, walk
from augtrain.spec import Data
from augtrain.ucr import ArchiveError, find_dataset, read_series

PICKLED = (
    "holds pickled Python objects (an object array), and augtrain never unpickles a data file: store "
    "variable-length series NaN-padded in x, or flat as values + lengths (see the README)"
)


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


def clip(exc: BaseException | str, limit: int = 160) -> str:
    """An error's text cut to `limit` characters: hostile input can make it any length."""
    text = str(exc)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


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
    listing = walk(root, data.follow_links)
    items, rejects = [], list(listing.rejects)
    for id_, path in listing.files:
        parts = Path(id_).parts
        if len(parts) < 2:
            rejects.append((id_, "not in a class sub-folder"))
        else:
            items.append((id_, path, parts[0]))
    if not items and not rejects:
        raise SourceError(f"{root}: no images found (expected one sub-folder per class)")
    return _images(items, rejects, root, data)


def _images(items: list[tuple[str, Path, str]], rejects: list[tuple[str, str]], root: Path, data: Data) -> Loaded:
    """Decode (id, file, label) items at the most common size and channel count (or data.resize/channels)."""
    out = Loaded(rejects=rejects)
    headers = {}
    for id_, path, label in items:
        reason, header = _read_header(path, data.max_pixels)
        if reason:
            out.rejects.append((id_, reason))
        else:
            headers[id_] = (path, label, header)
    if not headers:
        raise SourceError(f"{root}: none of {len(items) + len(rejects)} entries is a readable image")
    channels = data.channels or Counter(h[2][0] for h in headers.values()).most_common(1)[0][0]
    size = tuple(data.resize[::-1]) if data.resize else Counter(h[2][1] for h in headers.values()).most_common(1)[0][0]
    for id_, (path, label, _) in headers.items():
        image, reason = read_image(path, data, channels, size)
        if reason:
            out.rejects.append((id_, reason))
        else:
            out.add(id_, image, label)
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
    except Exception as exc:  # a hostile file trips the decoder anywhere; it is quarantined, the rest go on
        return None, f"truncated or corrupt: {type(exc).__name__}: {clip(exc)}"


def _read_header(path: Path, max_pixels: int):
    """(reason, None) for a file to quarantine, else (None, (channels, (width, height)))."""
    try:
        with open_regular(path) as file:
            if os.fstat(file.fileno()).st_size == 0:
                return "empty file (0 bytes)", None
            with Image.open(file) as image:
                mode, size = image.mode, image.size
    except Image.DecompressionBombError as exc:
        return f"decompression bomb: {exc}", None
    except UnidentifiedImageError:
        return "not a readable image: no image format recognised", None
    except Exception as exc:  # e.g. a short PNG header raises ValueError, a bad TIFF tag KeyError
        return f"not a readable image: {type(exc).__name__}: {clip(exc)}", None
    if size[0] * size[1] > max_pixels:
        return f"decompression bomb: {size[0]}x{size[1]} pixels exceeds data.max_pixels={max_pixels}", None
    channels = {"1": 1, "L": 1, "P": 3, "RGB": 3, "RGBA": 3}.get(mode)
    if channels is None:
        return f"wrong mode: {mode} (expected grey or RGB)", None
    return None, (channels, size)


def _decode(path: Path, channels: int, size: tuple[int, int]) -> np.ndarray:
    with open_regular(path) as file, Image.open(file) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != size:
            image = image.resize(size, Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    return array.reshape(size[1], size[0], channels)


def _npz_arrays(path: Path, sequence: bool = False) -> dict[str, np.ndarray]:
    """`x` and `y` of an .npz (for sequences: or `values`, `lengths` and `y`), never unpickled."""
    try:
        with open_regular(path) as file:
            archive = np.load(file, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise SourceError(f"{path}: a single .npy array, not an .npz archive of x and y")
            with archive:
                flat = sequence and {"values", "lengths"} <= set(archive.files)
                wanted = ["values", "lengths", "y"] if flat else ["x", "y"]
                missing = sorted(set(wanted) - set(archive.files))
                if missing:
                    also = ", or values, lengths and y" if sequence else ""
                    raise SourceError(f"{path}: missing array(s) {missing} (expected x and y{also})")
                arrays = {name: archive[name] for name in wanted}
    except SourceError:
        raise
    except ValueError as exc:
        if "Object arrays" in str(exc):
            raise SourceError(f"{path}: {PICKLED}") from None
        if "pickled data" in str(exc):  # numpy's guess for bytes with neither a zip nor an .npy header
            raise SourceError(f"{path}: not a readable .npz: no zip or .npy header (a pickle is never loaded)") from None
        raise SourceError(f"{path}: not a readable .npz: {clip(exc)}") from None
    except (OSError, EOFError, KeyError, MemoryError, zipfile.BadZipFile, zlib.error) as exc:
        raise SourceError(f"{path}: not a readable .npz: {type(exc).__name__}: {clip(exc)}") from None
    for name, array in arrays.items():
        if array.ndim == 0 or (name != "y" and array.dtype.kind not in "biuf"):
            raise SourceError(f"{path}: {name} has dtype {array.dtype} and shape {array.shape}; expected numbers per sample")
    first = "lengths" if "lengths" in arrays else "x"
    if arrays["y"].ndim != 1 or len(arrays[first]) != len(arrays["y"]):
        raise SourceError(f"{path}: {first} has {len(arrays[first])} samples but y has shape {arrays['y'].shape}")
    return arrays


def _npz(path: Path) -> Loaded:
    arrays = _npz_arrays(path)
    x, y = arrays["x"], arrays["y"]
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise SourceError(f"{path}: x has shape {x.shape}; expected (N, H, W) or (N, H, W, C)")
    x = x if x.dtype == np.uint8 else x.astype(np.float32)
    out = Loaded()
    for i, (sample, label) in enumerate(zip(x, y)):
        if np.isfinite(sample).all():
            out.add(f"{display(path.name)}[{i}]", sample, label)
        else:
            out.rejects.append((f"{display(path.name)}[{i}]", "non-finite values (NaN or inf)"))
    return out


def _ucr(name: str, archive: str | None) -> Loaded:
    """A UCR/UEA dataset: its TRAIN file becomes train+val, its TEST file the test split."""
    try:
        files = find_dataset(name, archive)
    except ArchiveError as exc:
        raise SourceError(str(exc)) from None
    return _series_files(list(files), test=files[1])


def _series_files(files: list[Path], test: Path | None = None) -> Loaded:
    """The series of `.ts`/`.tsv` files (bad data lines quarantined); those of `test` keep to the test split."""
    try:
        series = [read_series(f) for f in files]
    except ArchiveError as exc:
        raise SourceError(str(exc)) from None
    ids, values, labels, in_test, rejects = [], [], [], [], []
    for path, part in zip(files, series):
        ids += [f"{display(path.name)}:{line}" for line in part.lines]
        values += part.values
        labels += part.labels
        in_test += [path == test] * len(part.values)
        rejects += [(f"{display(path.name)}:{line}", reason) for line, reason in part.rejects]
    return _sequences(ids, values, labels, in_test, rejects)


def _npz_sequences(path: Path) -> Loaded:
    """`x` as (N, T) or (N, T, C), NaN-padded at the end; or variable-length series stored flat, `values`
    as (sum of T_i,) or (sum of T_i, C) with their `lengths` (N,)."""
    arrays = _npz_arrays(path, sequence=True)
    if "values" in arrays:
        series = _split_flat(path, arrays["values"], arrays["lengths"])
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
    ids = [f"{display(path.name)}[{i}]" for i in range(len(values))]
    return _sequences(ids, values, list(arrays["y"]), [False] * len(values))


def _split_flat(path: Path, values: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    if values.ndim not in (1, 2) or lengths.ndim != 1 or lengths.dtype.kind not in "iu" or (lengths < 0).any():
        raise SourceError(f"{path}: expected values (sum of T_i[, C]) and lengths (N,) of whole numbers >= 0")
    if int(lengths.sum()) != len(values):
        raise SourceError(f"{path}: lengths add up to {int(lengths.sum())} but values has {len(values)} steps")
    return np.split(values, np.cumsum(lengths)[:-1])


def _sequences(ids: list[str], values: list[np.ndarray], labels: list, test: list[bool],
               rejects: list[tuple[str, str]] = ()) -> Loaded:
    """Fill missing values by linear interpolation, then pad every series with NaN to the longest."""
    if not values and not rejects:
        raise SourceError("no series found")
    out = Loaded(kind="sequence", rejects=list(rejects))
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


def _csv_rows(path: Path) -> tuple[list[str], list[tuple[int, list]]]:
    """The header and each row with the file line it starts on (blank lines skipped, as in a spreadsheet)."""
    line = 1
    try:
        with open_regular(path) as raw:
            # utf-8-sig: a byte-order mark some spreadsheets write is not part of the first column's name
            reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline=""))
            header = next((row for row in reader if row), None)  # blank lines before the header are skipped
            if header is None:
                raise SourceError(f"{path}: empty file")
            if not _utf8(header):
                raise SourceError(f"{path}:{reader.line_num}: the header is not valid UTF-8")
            _refuse_duplicates(path, header)
            rows, line = [], reader.line_num + 1
            for row in reader:
                if row and len(row) != len(header):
                    raise SourceError(f"{path}:{line}: {len(row)} field(s), expected {len(header)} as in the header")
                if row:
                    rows.append((line, row))
                line = reader.line_num + 1
    except csv.Error as exc:
        raise SourceError(f"{path}:{line}: not readable as CSV: {clip(exc)}") from None
    except OSError as exc:
        raise SourceError(f"{path}: {clip(exc)}") from None
    return header, rows


def _parquet_rows(path: Path) -> tuple[list[str], list[tuple[int, list]]]:
    try:
        with open_regular(path) as file:
            table = pq.read_table(file)
        header = table.column_names
        _refuse_duplicates(path, header)
        return header, [(i, list(row.values())) for i, row in enumerate(table.to_pylist())]
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path}: not a readable Parquet file: {clip(exc)}") from None


def _utf8(values: list) -> bool:
    """Whether no text value holds bytes that were not UTF-8 (read as surrogate escapes)."""
    try:
        for value in values:
            if isinstance(value, str):
                value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_duplicates(path: Path, header: list[str]) -> None:
    twice = sorted(name for name, n in Counter(header).items() if n > 1)
    if twice:
        raise SourceError(f"{path}: duplicate column name(s) {[clip(n, 40) for n in twice]}; each column needs its own name")


def _table(path: Path, data: Data, labelled: bool) -> Loaded:
    """A CSV (rows named by file line) or Parquet (rows named by index) table of features or image paths."""
    header, rows = _csv_rows(path) if path.suffix == ".csv" else _parquet_rows(path)
    column = {name: i for i, name in enumerate(header)}
    if data.label_column not in column and labelled:
        raise SourceError(f"{path}: no label column {data.label_column!r} (columns: {clip(', '.join(header))})")

    def label_of(row: list) -> str | None:
        value = row[column[data.label_column]] if data.label_column in column else ""
        return None if value is None or (labelled and value == "") else value

    if data.image_column:
        if data.image_column not in column:
            raise SourceError(f"{path}: no image column {data.image_column!r}")
        return _image_table(path, data, rows, column[data.image_column], label_of)
    features = data.feature_columns or [c for c in header if c != data.label_column]
    unknown = sorted(set(features) - set(header))
    if unknown:
        raise SourceError(f"{path}: unknown feature column(s) {unknown}")
    shape = data.image_shape or (1, len(features), 1)
    if int(np.prod(shape)) != len(features):
        raise SourceError(f"{path}: data.image_shape {shape} does not hold {len(features)} features")
    out = Loaded()
    for line, row in rows:
        id_ = f"{display(path.name)}:{line}"
        values = [_number(row[column[c]]) for c in features]
        bad = next((c for c, v in zip(features, values) if v is None), None)
        if not _utf8(row):
            out.rejects.append((id_, "not valid UTF-8"))
        elif bad is not None:
            out.rejects.append((id_, f"missing or non-numeric value: column {clip(bad, 40)}"))
        elif label_of(row) is None:
            out.rejects.append((id_, f"missing label: column {data.label_column}"))
        else:
            out.add(id_, np.asarray(values, dtype=np.float32).reshape(shape), label_of(row))
    return out


def _image_table(path: Path, data: Data, rows: list[tuple[int, list]], image: int, label_of) -> Loaded:
    """Images named by a table column, relative to the table's folder (never outside it unless allowed)."""
    items, rejects = [], []
    for line, row in rows:
        name = row[image]
        id_ = display(name) if isinstance(name, str) and name else f"{display(path.name)}:{line}"
        file, reason = inside(path.parent, name, data.follow_links) if isinstance(name, str) and name else (None, "missing path")
        if reason is None and label_of(row) is None:
            reason = f"missing label: column {data.label_column}"
        elif reason is None and not _utf8(row):
            reason = "not valid UTF-8"
        if reason:
            rejects.append((id_, reason))
        else:
            items.append((id_, file, label_of(row)))
    return _images(items, rejects, path.parent, data)


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if np.isfinite(number) else None
