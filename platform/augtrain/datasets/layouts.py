"""How file-based sources are laid out, for any modality that reads one file per record (images,
recordings): a folder with one sub-folder per class (or train/, val/, test/ holding them), or a table
naming each record's file and label. Listing happens in the driver; the files are decoded later by the
modality's reader, in Ray Data tasks."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from augtrain.config.spec import Data
from augtrain.datasets.files import display, inside, local_source, stamp, walk, walk_uri
from augtrain.datasets.sources import (
    Listing,
    Reader,
    SourceError,
    csv_scan,
    missing,
    parquet_scan,
    table_header,
    utf8,
)
from augtrain.errors import clip

# A folder laid out as train/<class>/, val/<class>/, test/<class>/ keeps those splits.
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def folder(source: str, data: Data, what: str, labelled: bool = True) -> Listing:
    """One sub-folder per class (or train/, val/, test/ holding them); keys are the files (`what` they
    hold names them in the error for an empty folder). Unlabelled (prediction inputs), a file outside a
    class sub-folder is listed without a label."""
    path = local_source(source)
    files = walk(path, data.follow_links) if path is not None else walk_uri(source)
    out = Listing(Reader(), rejects=list(files.rejects))
    out.fingerprint = hashlib.sha256(json.dumps([files.stamps, files.rejects]).encode()).hexdigest()
    tops = {Path(id_).parts[0] for id_, _ in files.files}
    by_split = "train" in tops and tops <= set(SPLIT_FOLDERS)
    for id_, file in files.files:
        parts = Path(id_).parts[1:] if by_split else Path(id_).parts
        if len(parts) < 2 and not labelled:
            out.add(id_, "", str(file))
        elif len(parts) < 2:
            out.rejects.append((id_, "not in a class sub-folder"))
        else:
            out.add(id_, parts[0], str(file), SPLIT_FOLDERS[Path(id_).parts[0]] if by_split else "")
    if not out.ids and not out.rejects:
        raise SourceError(f"{source}: no {what} found (expected one sub-folder per class)")
    return out


def check_columns(source: str, header: list[str], data: Data, labelled: bool) -> None:
    """The label column (when labels are needed), data.split_column and data.path_column are in the table."""
    if data.label_column not in header and labelled:
        raise SourceError(f"{source}: no label column {data.label_column!r} (columns: {clip(', '.join(header))})")
    for column in (data.split_column, data.path_column):
        if column and column not in header:
            raise SourceError(f"{source}: no column {column!r} (columns: {clip(', '.join(header))})")


def labelled_rows(source: str, header: list[str], data: Data, labelled: bool, extra: str | None = None) -> Listing:
    """A table's rows as records keyed by (file line or row, byte offset): label and split read (and
    `extra`'s value kept per row), bad labels and splits quarantined."""
    columns = [c for c in (data.label_column, data.split_column, extra) if c in header]
    rows = csv_scan(source, columns) if source.endswith(".csv") else parquet_scan(source, columns)
    out = Listing(Reader(), fingerprint=hashlib.sha256(stamp(source).encode()).hexdigest())  # the table's file
    name = display(Path(source).name)
    for key, row in rows:
        named = extra and isinstance(row.get(extra), str) and row.get(extra)
        id_ = display(row[extra]) if named else f"{name}:{key[0]}"
        label = row.get(data.label_column, "")
        if not labelled and missing(label):
            label = ""  # an input to predict without its label
        named_split = str(row.get(data.split_column) or "").strip().lower() if data.split_column else ""
        split = SPLIT_FOLDERS.get(named_split, "?") if named_split else ""
        if label is None or (labelled and isinstance(label, str) and not label.strip()) or not utf8([label]):
            out.rejects.append((id_, f"missing label: column {data.label_column}" if utf8([label]) else "not valid UTF-8"))
        elif split == "?":
            out.rejects.append((id_, f"unknown split: {clip(str(row.get(data.split_column)), 40)!r} in column "
                                     f"{data.split_column} (expected train, val or test)"))
        else:
            out.add(id_, label, (key, row.get(extra)) if extra else key, split)
    return out


def file_table(source: str, data: Data, labelled: bool) -> Listing:
    """Files named by a table's data.path_column, relative to the table's folder (never outside it unless
    data.follow_links); keys are the files."""
    header = table_header(source)
    check_columns(source, header, data, labelled)
    rows = labelled_rows(source, header, data, labelled, data.path_column)
    root = local_source(source)
    out, first = Listing(Reader(), rejects=rows.rejects), {}  # file -> the line or row that named it first
    fingerprint = hashlib.sha256(rows.fingerprint.encode())  # and each file's stamp
    for id_, label, ((at, _), name), given in zip(rows.ids, rows.labels, rows.keys, rows.given):
        if not isinstance(name, str) or not name:
            out.rejects.append((id_, "missing path"))
            continue
        if not utf8([name]):
            out.rejects.append((id_, "not valid UTF-8"))
            continue
        if root is None:  # remote storage has no links, but a name may still climb out of the folder
            outside = Path(name).is_absolute() or ".." in Path(name).parts
            file, reason = f"{source.rsplit('/', 1)[0]}/{name}", f"outside the source folder: {display(name)}" if outside else None
        else:
            file, reason = inside(root.parent, name, data.follow_links)
        same = None if reason or not labelled else os.path.normpath(file)  # a/b.png, ./a/b.png, a/c/../b.png: one file
        if same in first:  # one file in two rows: in two classes, or in train and test
            reason = f"duplicate: the file of {first[same]}"
        if reason:
            out.rejects.append((id_, reason))
        else:
            first[same] = f"line {at}" if source.endswith(".csv") else f"row {at}"
            out.add(id_, label, str(file), given)
            fingerprint.update(f"{id_}\0{stamp(str(file))}\0".encode())
    out.fingerprint = fingerprint.hexdigest()
    return out
