"""Raw data sources: what every modality's readers share (records and rejects, tables, .npz files).

Every source is untrusted. A record that cannot be used becomes a quarantine row (id, reason), the
reason being `kind` or `kind: detail` (summaries group by kind); a source that cannot be read as a
whole is one SourceError naming the file and, where there is one, the line. Nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import shutil
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from augtrain.config.spec import MAX_TEXT_BYTES
from augtrain.datasets.files import display, open_source, stamp
from augtrain.errors import BadInput, clip

MAX_SAMPLE_BYTES = 256 << 20  # one sample's decoded bytes: a header may claim any shape
COPY_CHUNK = 1 << 20  # bytes a compressed .npz member is inflated by (`inflate_npz`)
SEEK_GAP = 1 << 20  # a task reads a table's rows this many bytes apart by seeking, nearer ones by reading on
MAX_LINE_BYTES = 64 << 20  # one line of a text file (a table's row, a series); a longer one fails the file
# what zipfile and numpy raise for a damaged, encrypted or oddly compressed archive
UNREADABLE_NPZ = (OSError, EOFError, KeyError, MemoryError, RuntimeError, NotImplementedError, zipfile.BadZipFile,
                  zlib.error)
PICKLED = (
    "holds pickled Python objects (an object array), and augtrain never unpickles a data file: store "
    "variable-length series NaN-padded in x, or flat as values + lengths (see the README)"
)


class SourceError(BadInput):
    """The source as a whole cannot be collected (missing, empty, malformed)."""


def class_name(label) -> str:
    """A record's label as the name of its class: as text (bytes read as UTF-8). ValueError (a quarantine
    reason) for a label that names none: missing (None, NaN, NaT), not valid UTF-8, or many values (a list,
    a record)."""
    if isinstance(label, bytes):
        try:
            label = label.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("label not valid UTF-8") from None
    if isinstance(label, (list, tuple, dict, set, np.ndarray)):
        raise ValueError(f"label is not one value: {type(label).__name__} {clip(str(label), 40)}")
    if missing(label):
        raise ValueError("missing label")
    return str(label)


def missing(value) -> bool:
    """None, or a NaN (float, numpy, Decimal) or NaT: the values that are not equal to themselves."""
    return value is None or value != value  # noqa: PLR0124


def _named(labels: list[str], rejects: list, id_: str, label) -> bool:
    """Append `label`'s class name to `labels`, or (False) the record to `rejects` with the reason it names none."""
    try:
        labels.append(class_name(label))
    except ValueError as exc:
        rejects.append((id_, str(exc)))
        return False
    return True


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
        """One sample, or a quarantined one where its label names no class (`class_name`)."""
        if not _named(self.labels, self.rejects, id_, label):
            return
        self.ids.append(id_)
        self.samples.append(sample)
        self.test.append(test)


class Reader:
    """Decodes a source's records from their keys (a file, a row), in Ray Data tasks on any node: it
    travels there pickled, so it holds settings, never data. Every sample it yields has `shape` and
    `dtype`."""

    shape: tuple[int, ...] = ()
    dtype: str = "float32"
    fields: dict = {}  # extra manifest fields that describe the samples
    random_access = False  # whether records read as cheaply in any order (a file each) as in the source's
    listed: dict[str, str] = {}  # file -> its stamp when listed, for a reader whose keys are its rows or offsets

    def read(self, keys: list) -> Iterator[tuple[np.ndarray | None, str]]:
        """(sample, "") or (None, the reason it is quarantined) for each key, in order."""
        raise NotImplementedError

    def staged(self, folder: str) -> None:
        """Prepare, once in the driver before the tasks, copies of what they read in `folder` (a scratch
        folder of collect's, removed after them): nothing for most readers."""

    def check_unchanged(self) -> None:
        """SourceError if a file read by row or offset changed after it was listed: its keys would now
        name other rows (rows moved, or rewritten in place) where a count of the rows read sees only
        missing ones."""
        for source, listed in self.listed.items():
            if stamp(source) != listed:
                raise SourceError(f"{display(source)}: changed after it was listed: collect it again")

    @property
    def sample_bytes(self) -> int:
        return sample_bytes(self.shape, self.dtype)


def sample_bytes(shape, dtype: str) -> int:
    """One decoded sample's bytes: `shape` (a reader's, or a manifest's) of `dtype`."""
    return int(np.prod(shape)) * np.dtype(dtype).itemsize


@dataclass
class Listing:
    """A source told cheaply, in the driver: per record its id, label, the split the source gives it
    ("" if none) and the key `reader` decodes it by; the entries refused while listing; and a
    fingerprint that changes whenever the source may have (equal fingerprints: nothing to collect)."""

    reader: Reader
    ids: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    given: list[str] = field(default_factory=list)
    keys: list = field(default_factory=list)
    rejects: list[tuple[str, str]] = field(default_factory=list)
    fingerprint: str = ""
    note: str = ""  # what collect's summary should tell the user (e.g. images resized)

    def add(self, id_: str, label, key, given: str = "") -> bool:
        """One record, or (False) a quarantined one where its label names no class (`class_name`)."""
        if not _named(self.labels, self.rejects, id_, label):
            return False
        self.ids.append(id_)
        self.keys.append(key)
        self.given.append(given)
        return True

    def decode(self) -> Iterator[tuple[str, str, np.ndarray | None, str]]:
        """(id, label, sample or None, reason) of every record, read in this process."""
        for id_, label, (sample, reason) in zip(self.ids, self.labels, self.reader.read(self.keys)):
            yield id_, label, sample, reason


class Held(Reader):
    """The reader of a source loaded whole in the driver (Loaded): a key is the sample itself."""

    random_access = True

    def __init__(self, shape: tuple[int, ...], dtype: str, fields: dict):
        self.shape, self.dtype, self.fields = shape, dtype, fields

    def read(self, keys: list) -> Iterator[tuple[np.ndarray | None, str]]:
        return ((key, "") for key in keys)


def held(loaded: Loaded, fields: dict) -> Listing:
    """The listing of a source that its modality loads whole (a small one, or a plug-in's)."""
    first = loaded.samples[0] if loaded.samples else np.zeros(0, np.float32)
    out = Listing(Held(tuple(first.shape), str(first.dtype), fields), rejects=list(loaded.rejects))
    digest = hashlib.sha256()
    for id_, sample, label, test in zip(loaded.ids, loaded.samples, loaded.labels, loaded.test):
        out.add(id_, label, sample, "test" if test else "")
        digest.update(f"{id_}\0{label}\0{test}\0{sample.dtype}{sample.shape}\0".encode())
        digest.update(np.ascontiguousarray(sample).tobytes())
    out.fingerprint = digest.hexdigest()
    return out


class _Lines:
    """A binary file's lines, decoded, counting the bytes and lines handed out (where a CSV row starts)."""

    def __init__(self, raw, offset: int, line: int):
        self.raw, self.offset, self.line = raw, offset, line

    def __iter__(self):
        return self

    def __next__(self) -> str:
        text = self.raw.readline(MAX_LINE_BYTES + 1)  # bounded: a file of one endless line is not held whole
        if not text:
            raise StopIteration
        self.line += 1
        if len(text) > MAX_LINE_BYTES:
            raise csv.Error(f"a line of over {MAX_LINE_BYTES >> 20} MiB")
        # utf-8-sig: a byte-order mark some spreadsheets write is not part of the first column's name
        encoding = "utf-8-sig" if self.offset == 0 else "utf-8"
        self.offset += len(text)
        return text.decode(encoding, errors="surrogateescape")


def _csv(source: str, offset: int = 0, line: int = 1):
    """(header or None, then ((line, offset), row) per non-blank row) read from `offset`; blank lines (or
    spaces only) are skipped, as in a spreadsheet."""
    first = line  # where the row being read starts
    try:
        with open_source(source) as raw:
            raw.seek(offset)
            lines = _Lines(raw, offset, line - 1)
            # a field as long as any text a job may take (UTF-8 has at most as many characters as bytes):
            # a text over the job's bound is read, then quarantined as too long, not the file refused
            csv.field_size_limit(MAX_TEXT_BYTES + 1)
            reader = csv.reader(lines, strict=True)  # an unclosed quote fails, not swallows the rest
            while True:
                start, first = lines.offset, lines.line + 1
                row = next(reader, None)
                if row is None:
                    return
                if len(row) > 1 or (row and row[0].strip()):  # a line of spaces is blank too
                    yield (first, start), row
    except csv.Error as exc:
        raise SourceError(f"{source}:{first}: not readable as CSV: {clip(exc)}") from None
    except OSError as exc:
        raise SourceError(f"{source}: {clip(exc)}") from None


def table_header(source: str) -> list[str]:
    """The column names of a CSV (its first non-blank row) or Parquet table."""
    if source.endswith(".csv"):
        (line, _), header = next(_csv(source), ((1, 0), None))
        if header is None:
            raise SourceError(f"{source}: empty file")
        if not utf8(header):
            raise SourceError(f"{source}:{line}: the header is not valid UTF-8")
    else:
        header = _parquet(source).schema_arrow.names
    refuse_duplicates(source, header)
    return header


def csv_scan(source: str, columns: list[str]):
    """((line, byte offset), {column: value}) of each row, read as a stream; a row with the wrong number
    of fields fails the file, naming its line."""
    rows = _csv(source)
    (_, _), header = next(rows)
    index = [header.index(c) for c in columns]
    for key, row in rows:
        if len(row) != len(header):
            raise SourceError(f"{source}:{key[0]}: {len(row)} field(s), expected {len(header)} as in the header")
        yield key, {c: row[i] for c, i in zip(columns, index)}


def csv_records(source: str, keys: list[tuple[int, int]]):
    """The rows at `keys` (line, byte offset), ascending."""
    return at_offsets(keys, lambda line, offset: ((start, row) for (_, start), row in _csv(source, offset, line)))


def at_offsets(keys: list[tuple[int, int]], read_from: Callable[[int, int], Iterator[tuple[int, Any]]]) -> Iterator:
    """The records at `keys` (line, byte offset), ascending, of a file read forward by `read_from(line,
    offset)` as (offset, record) pairs: each run of keys less than SEEK_GAP bytes apart is read from its
    first key on, and the file is sought to the next run."""
    runs = []
    for key in keys:
        if runs and key[1] - runs[-1][-1][1] < SEEK_GAP:
            runs[-1].append(key)
        else:
            runs.append([key])
    for run in runs:
        wanted = {offset for _, offset in run}
        for offset, record in read_from(*run[0]):
            if offset in wanted:
                yield record
            if offset >= run[-1][1]:
                break


def _parquet(source: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(open_source(source))
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{source}: not a readable Parquet file: {clip(exc)}") from None


def parquet_scan(source: str, columns: list[str]):
    """((row, row), {column: value}) of each row, reading only `columns`, a batch at a time."""
    try:
        row = 0
        for batch in _parquet(source).iter_batches(batch_size=65536, columns=columns):
            for values in batch.to_pylist():
                yield (row, row), values
                row += 1
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{source}: not a readable Parquet file: {clip(exc)}") from None


def parquet_records(source: str, keys: list[tuple[int, int]]):
    """The rows at `keys` (row, row), ascending, as lists in column order: only the row groups that hold
    them are read, a batch at a time."""
    table = _parquet(source)
    starts = np.cumsum([0] + [table.metadata.row_group(g).num_rows for g in range(table.num_row_groups)])
    rows = np.array([row for row, _ in keys], dtype=np.int64)
    groups = np.searchsorted(starts, rows, side="right") - 1
    for group in np.unique(groups):
        start = starts[group]
        wanted = rows[groups == group]
        for batch in table.iter_batches(batch_size=4096, row_groups=[int(group)]):
            chosen = wanted[(wanted >= start) & (wanted < start + batch.num_rows)] - start
            start += batch.num_rows
            for values in batch.take(pa.array(chosen)).to_pylist():
                yield list(values.values())
            if start > wanted[-1]:
                break


def utf8(values: list) -> bool:
    """Whether no text value holds bytes that were not UTF-8 (read as surrogate escapes)."""
    try:
        for value in values:
            if isinstance(value, str):
                value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def refuse_duplicates(path: Path | str, header: list[str]) -> None:
    twice = sorted(name for name, n in Counter(header).items() if n > 1)
    if twice:
        raise SourceError(f"{path}: duplicate column name(s) {[clip(n, 40) for n in twice]}; each column needs its own name")


def number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if np.isfinite(number) else None


def npz_arrays(path: Path | str, layouts: list[list[str]]) -> dict[str, np.ndarray]:
    """The arrays of the first of `layouts` (lists of names, `y` last) that an .npz holds, never unpickled."""
    try:
        with open_source(path) as file:
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
    except UNREADABLE_NPZ as exc:
        raise SourceError(f"{path}: not a readable .npz: {type(exc).__name__}: {clip(exc)}") from None
    for name, array in arrays.items():
        if array.ndim == 0 or (name != "y" and array.dtype.kind not in "biuf"):
            raise SourceError(f"{path}: {name} has dtype {array.dtype} and shape {array.shape}; expected numbers per sample")
    per_sample, y = arrays[wanted[-2]], arrays["y"]
    if y.ndim != 1 or len(per_sample) != len(y):
        raise SourceError(f"{path}: {wanted[-2]} has {len(per_sample)} samples but y has shape {y.shape}")
    return arrays


def _npz_member(archive: zipfile.ZipFile, source: str, name: str, inflated: dict[str, str] | None = None):
    """An .npz member opened at its data (or its copy in `inflated`, name -> .npy file), with its
    (shape, dtype); never a pickled object array."""
    member = open_source(inflated[name]) if inflated and name in inflated else archive.open(f"{name}.npy")
    version = np.lib.format.read_magic(member)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read(member)
    if dtype.hasobject:
        raise SourceError(f"{source}: {PICKLED}")
    if fortran and len(shape) > 1:
        raise SourceError(f"{source}: {name} is stored in Fortran order; save it C-contiguous (np.ascontiguousarray)")
    return member, shape, dtype


@contextlib.contextmanager
def _npz(source: str):
    """An .npz opened as a zip archive; whatever fails while it is read is one SourceError naming it."""
    try:
        with open_source(source) as file:
            if file.read(6) == b"\x93NUMPY":
                raise SourceError(f"{source}: a single .npy array, not an .npz archive of named arrays")
            file.seek(0)
            with zipfile.ZipFile(file) as archive:
                yield archive
    except SourceError:
        raise
    except (ValueError, *UNREADABLE_NPZ) as exc:
        raise SourceError(f"{source}: not a readable .npz: {type(exc).__name__}: {clip(exc)}") from None


def npz_members(source: str) -> set[str]:
    """The names of the arrays an .npz holds."""
    with _npz(source) as archive:
        return {name.removesuffix(".npy") for name in archive.namelist()}


def npz_labels(source: str, name: str, samples: str) -> list | None:
    """The labels array `name` of an .npz (or another array of one value per sample), of the samples array
    `samples`: None if the archive has neither."""
    with _npz(source) as archive:
        missing = [n for n in (samples, name) if f"{n}.npy" not in archive.namelist()]
        if len(missing) == 2 and samples != "x":
            return None
        if missing:
            raise SourceError(f"{source}: missing array(s) {missing} (expected x+y, and optionally x_test+y_test)")
        _npz_member(archive, source, name)[0].close()  # refuses an object array by its header
        labels = np.lib.format.read_array(archive.open(f"{name}.npy"), allow_pickle=False)
    if labels.ndim != 1:
        raise SourceError(f"{source}: {name} has shape {labels.shape}; expected one value per sample")
    return labels.tolist()


def npz_header(source: str, name: str, count: int | None) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of the samples array `name`, which must hold `count` (if given) numeric samples."""
    with _npz(source) as archive:
        if f"{name}.npy" not in archive.namelist():
            raise SourceError(f"{source}: missing array(s) {[name]}")
        member, shape, dtype = _npz_member(archive, source, name)
        member.close()
    if not shape or dtype.kind not in "biuf":
        raise SourceError(f"{source}: {name} has dtype {dtype} and shape {shape}; expected numbers per sample")
    if int(np.prod(shape[1:], dtype=np.float64)) * dtype.itemsize > MAX_SAMPLE_BYTES:
        raise SourceError(f"{source}: {name} holds samples of shape {shape[1:]}, over {MAX_SAMPLE_BYTES >> 20} MiB each")
    if count is not None and shape[0] != count:
        raise SourceError(f"{source}: {name} has {shape[0]} samples but its labels {count}")
    return tuple(shape), dtype


def npz_rows(source: str, keys: list[tuple[str, int, int]], inflated: dict[str, str] | None = None):
    """The rows at `keys` (array name, first row, rows), ascending within each array, each key's as one
    array, read by seeking in the member (a compressed one is decompressed up to the rows, never held whole)
    or in its inflated copy (`inflated`: name -> .npy file, see `inflate_npz`)."""
    with _npz(source) as archive:
        name, member = None, None
        for array, row, rows in keys:
            if array != name:
                if member is not None:
                    member.close()
                name = array
                member, shape, dtype = _npz_member(archive, source, name, inflated)
                start, size = member.tell(), int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
            member.seek(start + row * size)
            data = member.read(size * rows)
            if len(data) < size * rows:
                raise SourceError(f"{source}: {name} ends before row {row + rows} (a truncated file)")
            yield np.frombuffer(data, dtype=dtype).reshape(rows, *shape[1:])
        if member is not None:
            member.close()


def inflate_npz(source: str, names: list[str], folder: str) -> dict[str, str]:
    """Each compressed member of `names` written once, inflated and streamed, to folder/<name>.npy: name -> file.
    Rows are read from a compressed member by decompressing it from its start, so every task that reads
    rows spread over it (collect's parts take a share of every class) would otherwise inflate it nearly whole."""
    from augtrain.datasets.storage import join, make_folder, open_output

    copies = {}
    with _npz(source) as archive:
        for name in names:
            info = archive.getinfo(f"{name}.npy")
            if info.compress_type == zipfile.ZIP_STORED:
                continue
            make_folder(folder)
            copies[name] = join(folder, f"{name}.npy")
            with archive.open(info) as member, open_output(copies[name]) as copy:
                shutil.copyfileobj(member, copy, COPY_CHUNK)
    return copies


class NpzRows(Reader):
    """A reader of rows of the arrays `arrays` of the .npz `source` (keys: (array, first row, rows)); in
    collect, its compressed arrays are inflated once (`staged`) and the tasks read the copies."""

    inflated: dict[str, str] = {}

    def __init__(self, source: str, arrays: tuple[str, ...]):
        self.source, self.arrays = source, arrays
        self.listed = {source: stamp(source)}

    def staged(self, folder: str) -> None:
        self.inflated = inflate_npz(self.source, list(self.arrays), folder)

    def rows(self, keys: list) -> Iterator[np.ndarray]:
        return npz_rows(self.source, keys, self.inflated)
