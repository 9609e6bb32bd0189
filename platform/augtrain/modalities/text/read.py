"""Text sources: a table (CSV or Parquet) with a column of texts (data.text_column) and a label column, or
a folder of .txt files with one sub-folder per class (or train/, val/, test/ holding them). The driver
lists rows or files; Ray Data tasks decode each text (data.encoding) and store it as its UTF-8 bytes,
zero-padded to data.max_text_bytes: a (max_text_bytes,) uint8 sample.

A text is quarantined with its reason (and its line, in a CSV's id): bytes the encoding cannot decode,
an empty text, a text longer than data.max_text_bytes; rows without a label are refused while listing.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from augtrain.config.spec import Data
from augtrain.datasets.files import Refused, is_folder, open_record, stamp
from augtrain.datasets.layouts import check_columns, folder, labelled_rows
from augtrain.datasets.sources import (
    Listing,
    Reader,
    SourceError,
    csv_records,
    parquet_records,
    table_header,
)
from augtrain.errors import clip

SUFFIXES = {".txt"}
MAX_BYTES_PER_CHAR = 4  # a file of more bytes than this times the bound cannot fit it in UTF-8


def listing(data: Data, labelled: bool, max_bytes: int) -> Listing:
    """`data.source` listed; its texts decoded later, each at most `max_bytes` bytes of UTF-8."""
    source = data.source
    if is_folder(source):
        out = folder(source, data, "text files", labelled)
        out.reader = TextFiles(data.encoding, max_bytes)
        return out
    header = table_header(source)
    check_columns(source, header, data, labelled)
    column = data.text_column or "text"
    if column not in header:
        raise SourceError(f"{source}: no text column {column!r} (set data.text_column; columns: {clip(', '.join(header))})")
    out = labelled_rows(source, header, data, labelled)
    out.reader = TextRows(source, header.index(column), data.encoding, max_bytes)
    return out


class TextReader(Reader):
    """Texts -> their UTF-8 bytes, zero-padded to `max_bytes` (NUL characters and a leading byte-order mark
    dropped, ends stripped)."""

    dtype = "uint8"

    def __init__(self, encoding: str, max_bytes: int):
        self.encoding, self.shape = encoding, (max_bytes,)

    def sample(self, value: bytes | str | None) -> tuple[np.ndarray | None, str]:
        """One text value (bytes in `encoding`, or text) as a sample, or (None, why it is quarantined)."""
        if isinstance(value, bytes):
            try:
                value = value.decode(self.encoding)
            except UnicodeDecodeError as exc:
                return None, f"not valid {self.encoding}: byte {exc.start + 1} ({value[exc.start:exc.start + 1]!r})"
        if not isinstance(value, (str, type(None))):  # a Parquet column of numbers, say
            return None, f"not a text: a {type(value).__name__} value"
        text = (value or "").replace("\0", "").removeprefix("\ufeff").strip()  # a byte-order mark is no word
        if not text:
            return None, "empty text"
        try:
            encoded = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate, e.g. "\ud800" in JSON
            return None, "not valid UTF-8 (a lone surrogate)"
        if len(encoded) > self.shape[0]:
            return None, f"too long: {len(encoded)} bytes of UTF-8 exceed data.max_text_bytes={self.shape[0]}"
        sample = np.zeros(self.shape, np.uint8)
        sample[: len(encoded)] = np.frombuffer(encoded, np.uint8)
        return sample, ""


class TextRows(TextReader):
    """Rows of a table: the text column of each."""

    def __init__(self, source: str, column: int, encoding: str, max_bytes: int):
        super().__init__(encoding, max_bytes)
        self.source, self.column = source, column
        self.listed = {source: stamp(source)}

    def read(self, keys: list):
        csv = self.source.endswith(".csv")
        rows = csv_records(self.source, keys) if csv else parquet_records(self.source, keys)
        for row in rows:
            value = row[self.column]
            # a CSV is read as UTF-8 with its other bytes escaped: those are the file's own bytes again
            yield self.sample(value.encode("utf-8", errors="surrogateescape") if csv else value)


class TextFiles(TextReader):
    """A file per text."""

    random_access = True

    def read(self, keys: list):
        for key in keys:
            with contextlib.ExitStack() as stack:
                try:
                    raw = open_record(stack, key).read(self.shape[0] * MAX_BYTES_PER_CHAR + 1)
                except Refused as refused:
                    yield None, str(refused)
                    continue
                except OSError as exc:
                    yield None, f"not readable: {clip(exc)}"
                    continue
            if len(raw) > self.shape[0] * MAX_BYTES_PER_CHAR:
                yield None, f"too long: over {self.shape[0] * MAX_BYTES_PER_CHAR} bytes, exceeds data.max_text_bytes={self.shape[0]}"
            else:
                yield self.sample(raw)


def texts(samples: np.ndarray) -> list[str]:
    """Stored samples ((N, max_bytes) uint8) back to their texts."""
    return [bytes(row).rstrip(b"\0").decode("utf-8", errors="replace") for row in samples]


def train_texts(dataset, manifest: dict) -> Iterator[list[str]]:
    """The texts of a collected dataset's train split, a shard (<= 16 MiB) at a time."""
    from augtrain.datasets.format import decode_samples, read_columns, split_files

    for file in split_files(dataset, "train"):
        yield texts(decode_samples(read_columns([file], ["x"]).column("x").to_pylist(), manifest))


def stored(texts: list[str], width: int) -> np.ndarray:
    """Texts as stored samples ((N, width) uint8), each cut to `width` bytes of UTF-8 (e.g. after augmentation)."""
    out = np.zeros((len(texts), width), np.uint8)
    for row, text in zip(out, texts):
        encoded = text.encode("utf-8")[:width]
        row[: len(encoded)] = np.frombuffer(encoded, np.uint8)
    return out


def read_sent(value, encoding: str, max_bytes: int) -> tuple[np.ndarray | None, str]:
    """A text a client sent (a file's bytes, or the JSON object {"text": "..."}) as a stored sample, or (None,
    the reason)."""
    if isinstance(value, dict) and set(value) == {"text"} and isinstance(value["text"], str):
        value = value["text"]
    elif not isinstance(value, bytes):
        return None, 'expected a text: {"text": "..."} or a file\'s bytes'
    return TextReader(encoding, max_bytes).sample(value)
