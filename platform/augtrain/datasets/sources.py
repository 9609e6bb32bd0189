"""Raw data sources: what every modality's readers share (records and rejects, tables, .npz files).

Every source is untrusted. A record that cannot be used becomes a quarantine row (id, reason), the
reason being `kind` or `kind: detail` (summaries group by kind); a source that cannot be read as a
whole is one SourceError naming the file and, where there is one, the line. Nothing is unpickled.
"""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from augtrain.datasets.files import open_regular

PICKLED = (
    "holds pickled Python objects (an object array), and augtrain never unpickles a data file: store "
    "variable-length series NaN-padded in x, or flat as values + lengths (see the README)"
)


class SourceError(ValueError):
    """The source as a whole cannot be collected (missing, empty, malformed)."""


@dataclass
class Loaded:
    """What a source yields: good samples (one shape, as its modality decodes them) and the quarantined
    ones with reasons."""

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


def csv_rows(path: Path) -> tuple[list[str], list[tuple[int, list]]]:
    """The header and each row with the file line it starts on (blank lines skipped, as in a spreadsheet)."""
    line = 1
    try:
        with open_regular(path) as raw:
            # utf-8-sig: a byte-order mark some spreadsheets write is not part of the first column's name
            reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline=""))
            header = next((row for row in reader if row), None)  # blank lines before the header are skipped
            if header is None:
                raise SourceError(f"{path}: empty file")
            if not utf8(header):
                raise SourceError(f"{path}:{reader.line_num}: the header is not valid UTF-8")
            refuse_duplicates(path, header)
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


def parquet_rows(path: Path) -> tuple[list[str], list[tuple[int, list]]]:
    try:
        with open_regular(path) as file:
            table = pq.read_table(file)
        header = table.column_names
        refuse_duplicates(path, header)
        return header, [(i, list(row.values())) for i, row in enumerate(table.to_pylist())]
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path}: not a readable Parquet file: {clip(exc)}") from None


def utf8(values: list) -> bool:
    """Whether no text value holds bytes that were not UTF-8 (read as surrogate escapes)."""
    try:
        for value in values:
            if isinstance(value, str):
                value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def refuse_duplicates(path: Path, header: list[str]) -> None:
    twice = sorted(name for name, n in Counter(header).items() if n > 1)
    if twice:
        raise SourceError(f"{path}: duplicate column name(s) {[clip(n, 40) for n in twice]}; each column needs its own name")


def number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if np.isfinite(number) else None


def npz_arrays(path: Path, layouts: list[list[str]]) -> dict[str, np.ndarray]:
    """The arrays of the first of `layouts` (lists of names, `y` last) that an .npz holds, never unpickled."""
    try:
        with open_regular(path) as file:
            archive = np.load(file, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise SourceError(f"{path}: a single .npy array, not an .npz archive of named arrays")
            with archive:
                wanted = next((names for names in layouts if set(names) <= set(archive.files)), layouts[-1])
                missing = sorted(set(wanted) - set(archive.files))
                if missing:
                    expected = " or ".join("+".join(names) for names in layouts)
                    raise SourceError(f"{path}: missing array(s) {missing} (expected {expected})")
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
    per_sample, y = arrays[wanted[-2]], arrays["y"]
    if y.ndim != 1 or len(per_sample) != len(y):
        raise SourceError(f"{path}: {wanted[-2]} has {len(per_sample)} samples but y has shape {y.shape}")
    return arrays
