"""UCR/UEA time-series archive files: `.ts` (sktime/aeon text format) and `.tsv` (UCR 2018).

Read here rather than through aeon so that collecting needs no aeon import; aeon's wheel is only
one place the archive's files may be found.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from augtrain.datasets.files import open_source
from augtrain.datasets.sources import MAX_LINE_BYTES, at_offsets

BOOLEAN_TAGS = {"timestamps", "missing", "univariate", "equallength", "classlabel"}
TAGS = BOOLEAN_TAGS | {"problemname", "dimensions", "serieslength", "targetlabel", "data"}


class ArchiveError(ValueError):
    """A UCR/UEA file that cannot be read as a whole; the message names the file and line."""


class BadLine(ValueError):
    """One data line that cannot be read: it is quarantined, the rest of the file is read."""


def find_dataset(name: str, archive: str | Path | None) -> tuple[Path, Path]:
    """(TRAIN file, TEST file) of dataset `name` in `archive`, else in the copy aeon's wheel ships."""
    roots = [Path(archive)] if archive else []
    try:
        roots.append(Path(importlib.metadata.distribution("aeon").locate_file("aeon/datasets/data")))
    except importlib.metadata.PackageNotFoundError:
        pass
    for root in roots:
        for folder in (root / name, root):
            for suffix in (".ts", ".tsv"):
                train, test = folder / f"{name}_TRAIN{suffix}", folder / f"{name}_TEST{suffix}"
                if train.is_file() and test.is_file():
                    return train, test
    where = " or ".join(str(r) for r in roots) or "no archive (set data.archive, or pip install aeon)"
    raise ArchiveError(f"ucr:{name}: no {name}_TRAIN/_TEST .ts or .tsv files in {where}")


@dataclass(frozen=True)
class SeriesFile:
    """A .ts or .tsv archive file, opened: where its data lines start and, for a .ts file, the dimensions
    and classes they must have. Its data lines are found (`data_lines`) and read at those offsets
    (`rows_at`), never held whole: `(values (T, C) float32 with NaN where missing, label)` each, or the
    BadLine it is quarantined for."""

    path: str
    start: tuple[int, int] = (1, 0)  # (line, byte offset) of the first line after the header
    dims: int | None = None
    classes: frozenset[str] | None = None  # None: a .tsv file

    @staticmethod
    def open(path: Path | str) -> SeriesFile:
        """The file's header read and checked; a bad header fails the file (ArchiveError)."""
        if Path(str(path)).suffix != ".ts":
            return SeriesFile(str(path))
        header, start = _header(path, _numbered_lines(path))
        if header.get("timestamps"):
            raise ArchiveError(f"{path}: @timeStamps true is not supported")
        if not header.get("classlabel"):
            raise ArchiveError(f"{path}: no class labels (@classLabel false); augtrain classifies")
        # @dimensions, else what most data lines have (one bad first line must not condemn the rest)
        counts = Counter(row.count(":") for _, _, row in _numbered_lines(path, *start) if isinstance(row, str) and ":" in row)
        dims = header.get("dimensions") or (counts.most_common(1)[0][0] if counts else None)
        return SeriesFile(str(path), start, dims, frozenset(header["classes"]))

    def data_lines(self) -> Iterator[tuple[int, int]]:
        """(line, byte offset) of each data line, unparsed; blank lines (and a .ts file's comments) skipped."""
        for line, offset, row in _numbered_lines(self.path, *self.start):
            comment = self.classes is not None and isinstance(row, str) and row.lstrip().startswith("#")
            if not (isinstance(row, str) and not row.strip()) and not comment:
                yield line, offset

    def rows_at(self, keys: list[tuple[int, int]]) -> Iterator[tuple[np.ndarray, str] | BadLine]:
        """What the lines at `keys` (line, byte offset), ascending, hold: each run of nearby keys read
        forward from its first, the file sought between runs."""
        def read_from(line: int, offset: int):
            return ((at, row) for _, at, row in _numbered_lines(self.path, line, offset))

        lines = at_offsets(keys, read_from)
        return (self._parsed(row) for row in lines)

    def _parsed(self, row: str | UnicodeDecodeError) -> tuple[np.ndarray, str] | BadLine:
        try:
            return _tsv_row(_text(row)) if self.classes is None else _ts_row(_text(row), self.dims, self.classes)
        except BadLine as exc:
            return exc


def _numbered_lines(path: Path | str, line: int = 1, offset: int = 0) -> Iterator[tuple[int, int, str | UnicodeDecodeError]]:
    """(line number, byte offset, the line decoded as UTF-8 or the error that names its bad byte) of each
    line from `offset`, read as a stream."""
    try:
        with open_source(path) as raw:
            raw.seek(offset)
            while data := raw.readline(MAX_LINE_BYTES + 1):
                if len(data) > MAX_LINE_BYTES:
                    raise ArchiveError(f"{path}:{line}: a line of over {MAX_LINE_BYTES >> 20} MiB")
                try:
                    row = data.rstrip(b"\r\n").decode("utf-8")
                except UnicodeDecodeError as exc:
                    row = exc
                yield line, offset, row
                line, offset = line + 1, offset + len(data)
    except OSError as exc:
        raise ArchiveError(f"{path}: {exc.strerror or exc}") from None


def _text(row: str | UnicodeDecodeError) -> str:
    if isinstance(row, UnicodeDecodeError):
        raise BadLine(f"not valid UTF-8: byte {row.start + 1} is {row.object[row.start]:#04x}")
    return row


def _numbers(fields: list[str]) -> np.ndarray:
    values = np.empty(len(fields), dtype=np.float32)
    for i, value in enumerate(fields):
        value = value.strip()
        if value in {"?", "NaN", "nan"}:
            values[i] = np.nan
            continue
        try:
            values[i] = float(value)
        except (ValueError, OverflowError):
            raise BadLine(f"non-numeric value: {value[:40]!r} (field {i + 1})") from None
    return values


def _tsv_row(row: str) -> tuple[np.ndarray, str]:
    row = row.removeprefix("\ufeff").lstrip(" ").rstrip()  # a byte-order mark some editors write; a leading tab is an empty label
    label, *fields = row.split("\t") if "\t" in row else row.split(",")
    label = label.strip()
    if not label:
        raise BadLine("missing label")
    values = _numbers(fields)
    # UCR 2018 pads shorter series with trailing NaN
    valid = np.flatnonzero(~np.isnan(values))
    if len(valid) == 0:
        raise BadLine("no values")
    return values[: valid[-1] + 1, None], label.removesuffix(".0") if _is_number(label) else label


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _header(path: Path | str, lines: Iterator) -> tuple[dict, tuple[int, int]]:
    """The @tags up to @data as {tag: value}, and (line, byte offset) where the data lines start."""
    header: dict = {}
    seen = data = False
    for number, offset, row in lines:
        if data:
            return header, (number, offset)
        try:
            row = _text(row).removeprefix("\ufeff").strip()  # a byte-order mark some editors write
        except BadLine as exc:
            raise ArchiveError(f"{path}:{number}: {exc}") from None
        seen = seen or bool(row)
        if not row or row.startswith("#"):
            continue
        if not row.startswith("@"):
            raise ArchiveError(f"{path}:{number}: data before @data (expected a @tag header line)")
        tag, _, value = row[1:].partition(" ")
        tag, value = tag.lower(), value.strip()
        if tag not in TAGS:
            raise ArchiveError(f"{path}:{number}: unknown header tag @{tag[:40]}")
        if tag == "data":
            data = True
        elif tag in BOOLEAN_TAGS:
            flag, _, rest = value.partition(" ")
            if flag.lower() not in {"true", "false"}:
                raise ArchiveError(f"{path}:{number}: @{tag} must be true or false, got {value[:40]!r}")
            header[tag] = flag.lower() == "true"
            if tag == "classlabel":
                header["classes"] = rest.split()
                if header[tag] and not header["classes"]:
                    raise ArchiveError(f"{path}:{number}: @classLabel true lists no class labels")
        elif tag in {"dimensions", "serieslength"}:
            if not re.fullmatch(r"[0-9]+", value):
                raise ArchiveError(f"{path}:{number}: @{tag} must be a whole number, got {value[:40]!r}")
            header[tag] = int(value)
        else:
            header[tag] = value
    if data:
        raise ArchiveError(f"{path}: no series after @data")
    raise ArchiveError(f"{path}: {'no @data line (the header never ends)' if seen else 'empty file'}")


def _ts_row(row: str, dims: int | None, classes: set[str]) -> tuple[np.ndarray, str]:
    *channels, label = row.strip().split(":")
    label = label.strip()
    if not channels:
        raise BadLine("malformed: expected values:label")
    if len(channels) != dims:
        raise BadLine(f"wrong dimensions: {len(channels)}, expected {dims}")
    if label not in classes:
        raise BadLine(f"unknown label: {label[:40]!r} is not in @classLabel")
    series = [_numbers(c.split(",")) for c in channels]
    if len({len(s) for s in series}) > 1:
        raise BadLine("malformed: dimensions of one series differ in length")
    return np.stack(series, axis=1), label
