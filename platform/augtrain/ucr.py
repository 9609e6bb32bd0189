"""UCR/UEA time-series archive files: `.ts` (sktime/aeon text format) and `.tsv` (UCR 2018).

Read here rather than through aeon so that collecting needs no aeon import; aeon's wheel is only
one place the archive's files may be found.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BOOLEAN_TAGS = {"timestamps", "missing", "univariate", "equallength", "classlabel"}
TAGS = BOOLEAN_TAGS | {"problemname", "dimensions", "serieslength", "targetlabel", "data"}


class ArchiveError(ValueError):
    """A UCR/UEA file that cannot be read; the message names the file and line."""


@dataclass
class Series:
    """One file's series: each (T_i, C) float32 (NaN where a value is missing) with its label and line."""

    values: list[np.ndarray] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


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


def read_series(path: Path) -> Series:
    """Read a `.ts` or `.tsv` archive file."""
    text = path.read_text()
    if not text.strip():
        raise ArchiveError(f"{path}: empty file")
    return _read_ts(path, text) if path.suffix == ".ts" else _read_tsv(path, text)


def _numbers(path: Path, line: int, fields: list[str]) -> np.ndarray:
    values = np.empty(len(fields), dtype=np.float32)
    for i, value in enumerate(fields):
        value = value.strip()
        if value in {"?", "NaN", "nan"}:
            values[i] = np.nan
            continue
        try:
            values[i] = float(value)
        except ValueError:
            raise ArchiveError(f"{path}:{line}: non-numeric value {value!r} (field {i + 1})") from None
    return values


def _read_tsv(path: Path, text: str) -> Series:
    out = Series()
    for line, row in enumerate(text.splitlines(), start=1):
        if not row.strip():
            continue
        label, *fields = row.strip().split("\t") if "\t" in row else row.strip().split(",")
        values = _numbers(path, line, fields)
        # UCR 2018 pads shorter series with trailing NaN
        valid = np.flatnonzero(~np.isnan(values))
        if len(valid) == 0:
            raise ArchiveError(f"{path}:{line}: no values")
        out.values.append(values[: valid[-1] + 1, None])
        out.labels.append(label.strip().removesuffix(".0") if _is_number(label) else label.strip())
        out.lines.append(line)
    return out


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _header(path: Path, lines: list[str]) -> tuple[dict, int]:
    """The @tags up to @data as {tag: value}, and the index of the first data line."""
    header: dict = {}
    for i, row in enumerate(lines):
        row = row.strip()
        if not row or row.startswith("#"):
            continue
        if not row.startswith("@"):
            raise ArchiveError(f"{path}:{i + 1}: data before @data (expected a @tag header line)")
        tag, _, value = row[1:].partition(" ")
        tag, value = tag.lower(), value.strip()
        if tag not in TAGS:
            raise ArchiveError(f"{path}:{i + 1}: unknown header tag @{tag}")
        if tag == "data":
            return header, i + 1
        if tag in BOOLEAN_TAGS:
            flag, _, rest = value.partition(" ")
            if flag.lower() not in {"true", "false"}:
                raise ArchiveError(f"{path}:{i + 1}: @{tag} must be true or false, got {value!r}")
            header[tag] = flag.lower() == "true"
            if tag == "classlabel":
                header["classes"] = rest.split()
                if header[tag] and not header["classes"]:
                    raise ArchiveError(f"{path}:{i + 1}: @classLabel true lists no class labels")
        elif tag in {"dimensions", "serieslength"}:
            if not value.isdigit():
                raise ArchiveError(f"{path}:{i + 1}: @{tag} must be a whole number, got {value!r}")
            header[tag] = int(value)
        else:
            header[tag] = value
    raise ArchiveError(f"{path}: no @data line (the header never ends)")


def _read_ts(path: Path, text: str) -> Series:
    lines = text.splitlines()
    header, first = _header(path, lines)
    if header.get("timestamps"):
        raise ArchiveError(f"{path}: @timeStamps true is not supported")
    if not header.get("classlabel"):
        raise ArchiveError(f"{path}: no class labels (@classLabel false); augtrain classifies")
    classes, dims = set(header["classes"]), header.get("dimensions")
    out = Series()
    for i in range(first, len(lines)):
        row, line = lines[i].strip(), i + 1
        if not row or row.startswith("#"):
            continue
        *channels, label = row.split(":")
        label = label.strip()
        if not channels:
            raise ArchiveError(f"{path}:{line}: expected values:label")
        if dims is None:
            dims = len(channels)
        if len(channels) != dims:
            raise ArchiveError(f"{path}:{line}: {len(channels)} dimension(s), expected {dims} as in earlier lines")
        if label not in classes:
            raise ArchiveError(f"{path}:{line}: label {label!r} is not in @classLabel {sorted(classes)}")
        series = [_numbers(path, line, c.split(",")) for c in channels]
        if len({len(s) for s in series}) > 1:
            raise ArchiveError(f"{path}:{line}: dimensions of one series differ in length")
        out.values.append(np.stack(series, axis=1))
        out.labels.append(label)
        out.lines.append(line)
    if not out.values:
        raise ArchiveError(f"{path}: no series after @data")
    return out
