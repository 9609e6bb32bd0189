"""Hostile sources: one bad record is a quarantine row, a bad file one `error:` line, nothing is unpickled."""

import json
import os
import socket
import struct
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from augtrain.cli import app
from augtrain.config.spec import Data
from augtrain.datasets import sources
from augtrain.datasets.collect import collect
from augtrain.datasets.sources import SourceError
from augtrain.modalities import read_source
from PIL import Image
from test_collect import write_digit_folder
from typer.testing import CliRunner

# collect decodes in Ray Data tasks: one Ray for the session
pytestmark = pytest.mark.usefixtures("ray_session")


def reasons(collected) -> dict:
    return {r["id"]: r["reason"] for r in pq.read_table(Path(collected.path) / "quarantine.parquet").to_pylist()}


def collect_cli(*args):
    return CliRunner().invoke(app, ["collect", *map(str, args)])


def one_error(result, problem):
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and problem in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


class Payload:
    """Unpickling this creates `marker`: the proof that a loader ran code from a data file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_npz_never_runs_on_collect_or_predict(tmp_path):
    marker = tmp_path / "pwned"
    series = np.empty(4, dtype=object)
    series[:] = [np.arange(3.0), Payload(str(marker)), np.arange(4.0), np.arange(5.0)]
    np.savez(tmp_path / "evil.npz", x=series, y=np.array([0, 1, 0, 1]))
    one_error(collect_cli(tmp_path / "evil.npz", "--kind", "sequence", "--out", tmp_path / "out"),
              "evil.npz: holds pickled Python objects (an object array), and augtrain never unpickles")
    with pytest.raises(SourceError, match="never unpickles"):
        read_source(Data(source=str(tmp_path / "evil.npz"), kind="sequence"), labelled=False)  # predict's reader
    assert not marker.exists() and not (tmp_path / "out").exists()
    import pickle

    pickle.loads(pickle.dumps(series[1]))  # the payload is live: unpickling it would have run it
    assert marker.exists()


def short_ihdr_png(path):
    """A PNG whose IHDR chunk is 5 bytes long: Pillow raises ValueError, not an image error."""
    data = b"\0\0\0\1\0"
    chunk = struct.pack(">I", len(data)) + b"IHDR" + data + struct.pack(">I", zlib.crc32(b"IHDR" + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)


def test_one_bad_record_never_aborts_the_rest(tmp_path, digits):
    root = write_digit_folder(tmp_path / "images", digits)
    short_ihdr_png(root / "0" / "short.png")
    (root / "1" / "caf\xe9.png".encode("latin-1").decode("utf-8", "surrogateescape")).write_bytes(
        (root / "1" / "0.png").read_bytes()
    )
    collected = collect(Data(source=str(root)), tmp_path / "out")
    found = reasons(collected)
    assert found["0/short.png"].startswith("not a readable image: ValueError")
    assert found["1/caf\\xe9.png"] == "file name is not valid UTF-8"
    assert sum(sum(c.values()) for c in collected.manifest["counts"].values()) == 36


def test_a_table_never_reaches_outside_its_folder(tmp_path, digits):
    write_digit_folder(tmp_path / "img", digits)
    outside = tmp_path / "secret.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(outside)
    (tmp_path / "img" / "link.png").symlink_to(outside)
    files = sorted((tmp_path / "img").rglob("[0-9]*.png"))
    rows = [f"{f.relative_to(tmp_path / 'img')},{f.parent.name}" for f in files]
    rows += [f"{outside},0", "../secret.png,1", "link.png,2", "0,1"]
    (tmp_path / "img" / "index.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    collected = collect(Data(source=str(tmp_path / "img" / "index.csv"), path_column="path"), tmp_path / "out")
    found = reasons(collected)
    assert found[str(outside)] == f"outside the source folder: absolute path {outside}"
    assert found["../secret.png"].startswith("outside the source folder: ../secret.png")
    assert found["link.png"].startswith("outside the source folder: link.png")
    assert found["0"] == "not a regular file: folder"
    assert sum(sum(c.values()) for c in collected.manifest["counts"].values()) == 36
    allowed = collect(Data(source=str(tmp_path / "img" / "index.csv"), path_column="path", follow_links=True),
                      tmp_path / "allowed")
    assert sum(sum(c.values()) for c in allowed.manifest["counts"].values()) == 38


def test_links_fifos_and_sockets_are_quarantined_never_opened(tmp_path, digits):
    root = write_digit_folder(tmp_path / "images", digits)
    outside = tmp_path / "elsewhere.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(outside)
    (root / "0" / "broken.png").symlink_to(tmp_path / "gone.png")
    (root / "0" / "escape.png").symlink_to(outside)
    (root / "0" / "inside.png").symlink_to(root / "1" / "0.png")
    (root / "1" / "loop").symlink_to(root / "1")
    os.mkfifo(root / "1" / "fifo.png")  # opening it would block collect forever
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "2" / "sock.png"))
    (root / "stray.png").write_bytes((root / "1" / "0.png").read_bytes())
    try:
        collected = collect(Data(source=str(root)), tmp_path / "out")
    finally:
        server.close()
    found = reasons(collected)
    assert found["0/broken.png"] == f"broken symlink: {tmp_path / 'gone.png'}"
    assert found["0/escape.png"].startswith(f"symlink outside the source folder: {outside}")
    assert found["1/loop"] == "symlink loop: a folder reached twice"
    assert found["1/fifo.png"] == "not a regular file: FIFO"
    assert found["2/sock.png"] == "not a regular file: socket"
    assert found["stray.png"] == "not in a class sub-folder"
    assert "0/inside.png" not in found  # a link within the folder is an ordinary file
    assert sum(sum(c.values()) for c in collected.manifest["counts"].values()) == 37
    followed = collect(Data(source=str(root), follow_links=True), tmp_path / "followed")
    assert "0/escape.png" not in reasons(followed)


def write_csv(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("ragged.csv", "a,b,label\n1,2,0\n\n3,4\n", "ragged.csv:4: 2 field(s), expected 3 as in the header"),
        ("long.csv", "a,label\n1,0\n" + "9" * 1_100_000 + ",1\n", "long.csv:3: not readable as CSV: field larger than field limit"),  # over the 1 MiB a text may be
        ("empty.csv", "", "empty.csv: empty file"),
        # without strict quoting the rest of the file was one label, no row quarantined
        ("unclosed.csv", 'path,label\na.png,"cat\nb.png,dog\nc.png,dog\n', "unclosed.csv:2: not readable as CSV: unexpected end of data"),
        ("twice.csv", "label,f1,f1\n0,1,2\n1,3,4\n", "twice.csv: duplicate column name(s) ['f1']"),
        ("corrupt.parquet", b"PAR1" + bytes(range(256)) * 4, "corrupt.parquet: not a readable Parquet file"),
        ("random.npz", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "random.npz: not a readable .npz"),
        ("single.npz", "npy", "single.npz: a single .npy array, not an .npz archive"),
        ("noarrays.npz", "npz", "noarrays.npz: missing array(s) ['x', 'y']"),
        ("locked.npz", "encrypted", "locked.npz: not a readable .npz: RuntimeError: File 'y.npy' is encrypted"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 20 else "",
)
def test_a_bad_file_is_one_error_naming_it(tmp_path, name, content, problem):
    path = tmp_path / name
    if content == "npy":
        np.save(path.with_suffix(".npy"), np.zeros((3, 8, 8)))
        path.with_suffix(".npy").rename(path)
    elif content == "npz":
        np.savez(path, a=np.zeros(3))
    elif content == "encrypted":  # zip's encryption flag set on every member
        np.savez(path, x=np.zeros((3, 8, 8)), y=np.arange(3))
        data = bytearray(path.read_bytes())
        for signature, flag in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            at = data.find(signature)
            while at >= 0:
                data[at + flag] |= 1
                at = data.find(signature, at + 1)
        path.write_bytes(data)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    one_error(collect_cli(path, "--out", tmp_path / "out"), problem)
    assert not (tmp_path / "out").exists()


def test_an_endless_csv_line_fails_its_file_without_being_held_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_LINE_BYTES", 1 << 20)
    (tmp_path / "endless.csv").write_bytes(b"path,label\na.png,0\n" + b"\0" * (3 << 20))  # no line end
    one_error(collect_cli(tmp_path / "endless.csv", "--out", tmp_path / "out"), "endless.csv:3: not readable as CSV: a line of over 1 MiB")


def test_labels_that_name_no_class_and_files_listed_twice_are_quarantined(tmp_path, digits):
    root = write_digit_folder(tmp_path / "img", digits)
    files = sorted(str(f.relative_to(root)) for f in root.rglob("*.png"))
    labels = [float(Path(f).parent.name) for f in files]
    labels[4] = float("nan")  # a float column's missing label
    table = pa.table({"path": files + ["./" + files[0], files[1]], "label": labels + [0.0, 9.0]})
    pq.write_table(table, root / "index.parquet")
    found = reasons(collect(Data(source=str(root / "index.parquet"), path_column="path"), tmp_path / "o1"))
    # the file of one row in two classes (or in train and test) is kept once, by its first row
    assert found == {files[4]: "missing label", "./" + files[0]: "duplicate: the file of row 0",
                     files[1]: "duplicate: the file of row 1"}
    np.savez(tmp_path / "b.npz", x=digits.images[:40], y=np.array([b"odd", b"even"])[digits.target[:40] % 2])
    assert collect(Data(source=str(tmp_path / "b.npz")), tmp_path / "o2").manifest["classes"] == ["even", "odd"]


def test_csv_rows_are_named_by_their_true_line_and_summarised_by_kind(tmp_path, digits):
    header = ",".join(f"p{i}" for i in range(64)) + ",label\n"
    lines = [",".join(map(str, row)) + f",{t}" for row, t in zip(digits.data[:60].astype(int), digits.target[:60])]
    for bad in (3, 7, 11):
        lines[bad] = lines[bad].replace(",", ",x", 1)
    lines[20] = lines[20].rsplit(",", 1)[0] + ","  # no label
    text = header + "\n\n".join(lines[:10]) + "\n" + "\n".join(lines[10:]) + "\n"  # blank lines among the first rows
    source = write_csv(tmp_path / "d.csv", text)
    result = collect_cli(source, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    # rows whose label is missing are refused while listing, the others by the decoding tasks: by line
    found = sorted(pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist(), key=lambda r: int(r["id"][6:]))
    # line of row i: the header, then rows 0-9 two lines apart, then one apart
    line = {i: 2 + 2 * i if i < 10 else 21 + (i - 10) for i in range(60)}
    assert found == [{"id": f"d.csv:{line[i]}", "reason": "missing or non-numeric value: column p1"} for i in (3, 7)] + [
        {"id": f"d.csv:{line[11]}", "reason": "missing or non-numeric value: column p1"},
        {"id": f"d.csv:{line[20]}", "reason": "missing label: column label"},
    ]
    assert (source.read_text().splitlines()[line[7] - 1]) == lines[7]
    assert "  quarantined 3: missing or non-numeric value\n  quarantined 1: missing label\n" in result.output


def test_a_recollect_with_new_bad_rows_writes_the_new_quarantine(tmp_path, digits):
    root = write_digit_folder(tmp_path / "images", digits)
    first = collect(Data(source=str(root)), tmp_path / "out")
    assert reasons(first) == {}
    (root / "2" / "junk.png").write_bytes(b"not an image")
    # Pillow reads EPS by running Ghostscript on it: not a format collect opens
    (root / "2" / "drawing.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n")
    second = collect(Data(source=str(root)), tmp_path / "out")
    assert not second.skipped and second.manifest["hash"] != first.manifest["hash"]
    unread = "not a readable image: not PNG, JPEG, GIF, BMP, TIFF, WEBP, PPM, TGA"
    assert reasons(second) == {"2/junk.png": unread, "2/drawing.png": unread}
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["quarantined"] == 2


def test_a_spreadsheet_csv_with_a_bom_and_leading_blank_lines_reads(tmp_path, digits):
    header = ",".join(f"p{i}" for i in range(64)) + ",label"
    rows = [",".join(map(str, r)) + f",{t}" for r, t in zip(digits.data[:60].astype(int), digits.target[:60])]
    (tmp_path / "d.csv").write_bytes(b"\xef\xbb\xbf\n\n" + "\n".join([header, *rows]).encode() + b"\n")
    collected = collect(Data(source=str(tmp_path / "d.csv")), tmp_path / "out")
    assert sum(sum(c.values()) for c in collected.manifest["counts"].values()) == 60


def test_samples_without_values_and_names_that_are_not_utf8_are_refused_or_quarantined(tmp_path, digits):
    (tmp_path / "labels.csv").write_text("label\n" + "\n".join(str(t) for t in digits.target[:40]) + "\n")
    one_error(collect_cli(tmp_path / "labels.csv", "--out", tmp_path / "o1"), "the samples hold no values")
    write_digit_folder(tmp_path / "img", digits)
    files = sorted((tmp_path / "img").rglob("*.png"))
    rows = b"".join(f"{f.relative_to(tmp_path / 'img')},{f.parent.name}\n".encode() for f in files)
    (tmp_path / "img" / "index.csv").write_bytes(b"path,label\n" + rows + b"0/0.png,caf\xe9\n")
    collected = collect(Data(source=str(tmp_path / "img" / "index.csv"), path_column="path"), tmp_path / "o2")
    assert reasons(collected) == {"0/0.png": "not valid UTF-8"}
    odd = tmp_path / os.fsdecode(b"caf\xe9.npz")
    np.savez(odd, x=digits.images[:40], y=digits.target[:40] % 2)
    assert reasons(collect(Data(source=str(odd)), tmp_path / "o3")) == {}  # ids name it caf\xe9.npz[i]


def test_a_source_that_goes_back_and_forth_keeps_every_version(tmp_path, digits):
    root = write_digit_folder(tmp_path / "images", digits)
    junk = root / "2" / "junk.png"
    hashes = []
    for bad in (False, True, False, True):
        junk.write_bytes(b"not an image") if bad else junk.unlink(missing_ok=True)
        hashes.append(collect(Data(source=str(root)), tmp_path / "out").manifest["hash"])
    assert hashes[0] == hashes[2] != hashes[1] == hashes[3]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["hash"] == hashes[3]
    assert json.loads((tmp_path / f"out@{hashes[0][:12]}" / "manifest.json").read_text())["hash"] == hashes[0]
    assert not list(tmp_path.glob(".out.staging-*"))
