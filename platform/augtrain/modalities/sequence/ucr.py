"""UCR/UEA time-series archive files: `.ts` (sktime/aeon text format) and `.tsv` (UCR 2018).

Read here rather than through aeon so that collecting needs no aeon import; aeon's wheel is only
one place the archive's files may be found.
"""

from __future__ import annotations

import importlib.metadata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from augtrain.datasets.files import read_bytes

BOOLEAN_TAGS = {"timestamps", "missing", "univariate", "equallength", "classlabel"}
TAGS = BOOLEAN_TAGS | {"problemname", "dimensions", "serieslength", "targetlabel", "data"}


class ArchiveError(ValueError):
    """A UCR/UEA file that cannot be read as a whole; the message names the file and line."""


class BadLine(ValueError):
    """One data line that cannot be read: it is quarantined, the rest of the file is read."""


@dataclass
class Series:
    """One file's series: each (T_i, C) float32 (NaN where a value is missing) with its label and line,
    and the data lines refused as (line, reason)."""

    values: list[np.ndarray] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rejects: list[tuple[int, str]] = field(default_factory=list)

    def read(self, line: int, parse) -> None:
        """Add the (values, label) that `parse()` makes of data line `line`, or quarantine it."""
        try:
            values, label = parse()
        except BadLine as exc:
            self.rejects.append((line, str(exc)))
            return
        self.values.append(values)
        self.labels.append(label)
        self.lines.append(line)


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


def read_series(path: Path | str) -> Series:
    """Read a `.ts` or `.tsv` archive file; a bad data line is quarantined, a bad header fails the file."""
    try:
        lines = _lines(read_bytes(path))
    except OSError as exc:
        raise ArchiveError(f"{path}: {exc.strerror or exc}") from None
    if not any(row.strip() for row in lines if isinstance(row, str)):
        raise ArchiveError(f"{path}: empty file")
    return _read_ts(path, lines) if Path(path).suffix == ".ts" else _read_tsv(lines)


def _lines(data: bytes) -> list[str | UnicodeDecodeError]:
    """Each line decoded as UTF-8, or the error that names its bad byte."""
    out = []
    for row in data.splitlines():
        try:
            out.append(row.decode("utf-8"))
        except UnicodeDecodeError as exc:
            out.append(exc)
    return out


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


def _read_tsv(lines: list) -> Series:
    out = Series()
    for line, row in enumerate(lines, start=1):
        if isinstance(row, str) and not row.strip():
            continue
        out.read(line, lambda: _tsv_row(_text(row)))
    return out


def _tsv_row(row: str) -> tuple[np.ndarray, str]:
    label, *fields = row.strip().split("\t") if "\t" in row else row.strip().split(",")
    values = _numbers(fields)
    # UCR 2018 pads shorter series with trailing NaN
    valid = np.flatnonzero(~np.isnan(values))
    if len(valid) == 0:
        raise BadLine("no values")
    return values[: valid[-1] + 1, None], label.strip().removesuffix(".0") if _is_number(label) else label.strip()


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _header(path: Path | str, lines: list) -> tuple[dict, int]:
    """The @tags up to @data as {tag: value}, and the index of the first data line."""
    header: dict = {}
    for i, row in enumerate(lines):
        try:
            row = _text(row).strip()
        except BadLine as exc:
            raise ArchiveError(f"{path}:{i + 1}: {exc}") from None
        if not row or row.startswith("#"):
            continue
        if not row.startswith("@"):
            raise ArchiveError(f"{path}:{i + 1}: data before @data (expected a @tag header line)")
        tag, _, value = row[1:].partition(" ")
        tag, value = tag.lower(), value.strip()
        if tag not in TAGS:
            raise ArchiveError(f"{path}:{i + 1}: unknown header tag @{tag[:40]}")
        if tag == "data":
            return header, i + 1
        if tag in BOOLEAN_TAGS:
            flag, _, rest = value.partition(" ")
            if flag.lower() not in {"true", "false"}:
                raise ArchiveError(f"{path}:{i + 1}: @{tag} must be true or false, got {value[:40]!r}")
            header[tag] = flag.lower() == "true"
            if tag == "classlabel":
                header["classes"] = rest.split()
                if header[tag] and not header["classes"]:
                    raise ArchiveError(f"{path}:{i + 1}: @classLabel true lists no class labels")
        elif tag in {"dimensions", "serieslength"}:
            if not value.isdigit():
                raise ArchiveError(f"{path}:{i + 1}: @{tag} must be a whole number, got {value[:40]!r}")
            header[tag] = int(value)
        else:
            header[tag] = value
    raise ArchiveError(f"{path}: no @data line (the header never ends)")


def _read_ts(path: Path | str, lines: list) -> Series:
    header, first = _header(path, lines)
    if header.get("timestamps"):
        raise ArchiveError(f"{path}: @timeStamps true is not supported")
    if not header.get("classlabel"):
        raise ArchiveError(f"{path}: no class labels (@classLabel false); augtrain classifies")
    classes = set(header["classes"])
    # @dimensions, else what most data lines have (one bad first line must not condemn the rest)
    counts = Counter(row.count(":") for row in lines[first:] if isinstance(row, str) and ":" in row)
    dims = header.get("dimensions") or (counts.most_common(1)[0][0] if counts else None)
    out = Series()
    for i in range(first, len(lines)):
        if isinstance(lines[i], str) and (not lines[i].strip() or lines[i].strip().startswith("#")):
            continue
        out.read(i + 1, lambda: _ts_row(_text(lines[i]), dims, classes))
    if not out.values and not out.rejects:
        raise ArchiveError(f"{path}: no series after @data")
    return out


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
