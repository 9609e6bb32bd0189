"""UCR/UEA archive files: .ts and .tsv parsing, collection of sequences, and bad input."""

import json
import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
from augtrain.cli import app
from augtrain.config.spec import Data
from augtrain.datasets import files, sources
from augtrain.datasets.collect import Part, collect, write_part
from augtrain.datasets.format import decode_samples, split_files
from augtrain.datasets.sources import SourceError
from augtrain.modalities import read_source
from augtrain.modalities.sequence import read
from augtrain.modalities.sequence.ucr import (
    ArchiveError,
    BadLine,
    SeriesFile,
    find_dataset,
)
from typer.testing import CliRunner

HEADER = "# a comment\n@problemName Toy\n@timeStamps false\n@missing {missing}\n@univariate {uni}\n" \
         "{dims}@equalLength {equal}\n@classLabel true a b\n@data\n"


def ts_file(path, rows, uni=True, missing=False, equal=True, dims=None):
    head = HEADER.format(
        missing=str(missing).lower(), uni=str(uni).lower(), equal=str(equal).lower(),
        dims=f"@dimensions {dims}\n" if dims else "",
    )
    path.write_text(head + "\n".join(rows) + "\n")
    return path


def read_series(path) -> SimpleNamespace:
    """An archive file's data lines as collect's listing reads them: lines, labels and values of the good
    ones, (line, reason) of the bad."""
    out = SimpleNamespace(lines=[], labels=[], values=[], rejects=[])
    file = SeriesFile.open(path)
    lines = list(file.data_lines())
    for (line, _), row in zip(lines, file.rows_at(lines)):
        if isinstance(row, BadLine):
            out.rejects.append((line, str(row)))
        else:
            out.lines.append(line)
            out.values.append(row[0])
            out.labels.append(row[1])
    return out


def toy_archive(root, name="Toy", n=12, length=20):
    """A two-class univariate dataset: rising vs falling ramps with noise, TRAIN and TEST files."""
    rng = np.random.default_rng(0)
    (root / name).mkdir(parents=True)
    for part, count in (("TRAIN", n), ("TEST", n // 2)):
        rows = []
        for i in range(count):
            label = "ab"[i % 2]
            ramp = np.linspace(-1, 1, length) * (1 if label == "a" else -1) + rng.normal(0, 0.1, length)
            rows.append(",".join(f"{v:.4f}" for v in ramp) + f":{label}")
        ts_file(root / name / f"{name}_{part}.ts", rows)
    return root


def test_univariate_equal_length(tmp_path):
    series = read_series(ts_file(tmp_path / "u.ts", ["1,2,3:a", "4,5,6:b"]))
    assert series.labels == ["a", "b"] and series.lines == [9, 10]
    np.testing.assert_array_equal(series.values[1], [[4], [5], [6]])
    assert series.values[0].dtype == np.float32


def test_multivariate_unequal_length_and_missing(tmp_path):
    rows = ["1,2,3:10,20,30:a", "1,?,3,4:5,6,7,8:b", "9,9:8,8:a"]
    series = read_series(ts_file(tmp_path / "m.ts", rows, uni=False, missing=True, equal=False, dims=2))
    assert [v.shape for v in series.values] == [(3, 2), (4, 2), (2, 2)]
    assert np.isnan(series.values[1][1, 0]) and series.values[1][1, 1] == 6


def test_tsv_label_first_and_nan_padding(tmp_path):
    (tmp_path / "x.tsv").write_text("1\t0.5\t0.25\tNaN\tNaN\n2\t1\tNaN\t3\t4\n")
    series = read_series(tmp_path / "x.tsv")
    assert series.labels == ["1", "2"]
    assert series.values[0].shape == (2, 1)  # trailing NaN is padding
    assert series.values[1].shape == (4, 1) and np.isnan(series.values[1][1, 0])  # inner NaN is missing


@pytest.mark.parametrize(
    "content, problem",
    [
        ("@problemName X\n@univariate maybe\n@classLabel true a b\n@data\n1,2:a\n", r"x\.ts:2: @univariate must be true or false"),
        ("", r"x\.ts: empty file"),
        ("@problemName X\n@classLabel true a b\n1,2:a\n", r"x\.ts:3: data before @data"),
        ("@problemName X\n@colour blue\n@data\n", r"x\.ts:2: unknown header tag @colour"),
        (b"@problemName X\n@classLabel true a \xff\n@data\n1,2:a\n", r"x\.ts:2: not valid UTF-8: byte 20 is 0xff"),
        ("@problemName X\n@dimensions \u00b2\n@data\n1,2:a\n", r"x\.ts:2: @dimensions must be a whole number, got '\u00b2'"),
    ],
    ids=["bad-header", "empty", "no-data-tag", "unknown-tag", "header-not-utf8", "superscript-dimensions"],
)
def test_a_malformed_header_names_file_and_line(tmp_path, content, problem):
    path = tmp_path / "x.ts"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ArchiveError, match=problem):
        read_series(path)


def test_a_byte_order_mark_is_not_part_of_a_header_or_a_label(tmp_path):
    (tmp_path / "u.ts").write_text("\ufeff" + HEADER.format(missing="false", uni="true", equal="true", dims="") + "1,2:a\n")
    assert read_series(tmp_path / "u.ts").labels == ["a"]
    (tmp_path / "x.tsv").write_text("\ufeff1\t0.5\t1\n\t1\t2\n")
    series = read_series(tmp_path / "x.tsv")
    assert series.labels == ["1"] and series.rejects == [(2, "missing label")]


def test_labels_that_look_numeric_but_are_not_sort_as_names(tmp_path):
    rows = [f"{label}\t{i}\t{i + 1}" for i in range(8) for label in ("1", "--1", "2", "\u00b2")]
    (tmp_path / "x.tsv").write_text("\n".join(rows) + "\n")
    collected = collect(Data(source=str(tmp_path / "x.tsv"), kind="sequence"), tmp_path / "out")
    assert collected.manifest["classes"] == ["1", "2", "--1", "\u00b2"]


def test_bad_data_lines_are_quarantined_with_their_line_and_the_rest_read(tmp_path):
    rows = [b"1,2:a", b"1,2:3,4:a", b"1,2:c", b"1,x2:b", b"1,\xff\xfe:b", b"1,2", b"3,4:b"]
    (tmp_path / "x.ts").write_bytes(b"@problemName X\n@classLabel true a b\n@data\n" + b"\n".join(rows) + b"\n")
    series = read_series(tmp_path / "x.ts")
    assert series.lines == [4, 10] and series.labels == ["a", "b"]
    assert series.rejects == [
        (5, "wrong dimensions: 2, expected 1"),
        (6, "unknown label: 'c' is not in @classLabel"),
        (7, "non-numeric value: 'x2' (field 2)"),
        (8, "not valid UTF-8: byte 3 is 0xff"),
        (9, "malformed: expected values:label"),
    ]


def test_a_long_series_file_is_measured_in_tasks_as_a_short_one_is_here(ray_session, tmp_path, monkeypatch):
    rows = [b"1,2:a", b"1,2:3,4:a", b"1,2:c", b"1,x2:b", b"1,\xff\xfe:b", b"1,2", b"3,4,5:b"] * 6
    (tmp_path / "x.ts").write_bytes(b"@problemName X\n@classLabel true a b\n@data\n" + b"\n".join(rows) + b"\n")
    here = read_source(Data(source=str(tmp_path / "x.ts")))[1]
    monkeypatch.setattr(read, "LINES_PER_TASK", 5)  # 42 lines: 9 tasks
    tasks = read_source(Data(source=str(tmp_path / "x.ts")))[1]
    assert (tasks.ids, tasks.labels, tasks.keys, tasks.rejects) == (here.ids, here.labels, here.keys, here.rejects)
    assert here.ids[:3] == ["x.ts:4", "x.ts:10", "x.ts:11"] and len(here.ids) == 12
    assert here.rejects[:2] == [("x.ts:5", "wrong dimensions: 2, expected 1"),
                                ("x.ts:6", "unknown label: 'c' is not in @classLabel")] and len(here.rejects) == 30
    assert (tasks.reader.shape, tasks.reader.fields) == (here.reader.shape, here.reader.fields) == \
        ((3, 1), {"channels": 1, "lengths": {"min": 2, "max": 3}})


def test_find_dataset_in_an_archive_folder(tmp_path):
    toy_archive(tmp_path)
    train, test = find_dataset("Toy", tmp_path)
    assert train.name == "Toy_TRAIN.ts" and test.name == "Toy_TEST.ts"
    with pytest.raises(ArchiveError, match="ucr:Nope: no Nope_TRAIN/_TEST"):
        find_dataset("Nope", tmp_path)


@pytest.mark.usefixtures("ray_session")
def test_collect_keeps_the_archive_test_split_and_pads_unequal_lengths(tmp_path):
    rows = [f"{','.join(['1'] * (3 + i % 4))}:{'ab'[i % 2]}" for i in range(20)]
    rows[4] = "1,?,3:a"  # a missing value inside a series is interpolated
    (tmp_path / "V").mkdir()
    ts_file(tmp_path / "V" / "V_TRAIN.ts", rows, missing=True, equal=False)
    ts_file(tmp_path / "V" / "V_TEST.ts", rows[:6], equal=False)
    collected = collect(Data(source="ucr:V", archive=str(tmp_path)), tmp_path / "out")
    manifest = collected.manifest
    assert manifest["kind"] == "sequence" and manifest["shape"] == [6, 1] and manifest["channels"] == 1
    assert manifest["lengths"] == {"min": 3, "max": 6}
    assert sum(manifest["counts"]["test"].values()) == 6
    assert sum(manifest["counts"]["train"].values()) + sum(manifest["counts"]["val"].values()) == 20
    table = pq.read_table(split_files(collected.path, "train") + split_files(collected.path, "val")).to_pydict()
    x = dict(zip(table["id"], decode_samples(table["x"], manifest)))
    np.testing.assert_array_equal(x["V_TRAIN.ts:13"][:, 0], [1, 2, 3, np.nan, np.nan, np.nan])


@pytest.mark.usefixtures("ray_session")
def test_aeon_copy_multivariate_dataset(tmp_path):
    manifest = collect(Data(source="ucr:BasicMotions"), tmp_path / "bm").manifest
    assert manifest["shape"] == [100, 6] and manifest["classes"] == ["Badminton", "Running", "Standing", "Walking"]
    assert sum(manifest["counts"]["test"].values()) == 40


@pytest.mark.usefixtures("ray_session")
def test_npz_sequences_flat_values_with_lengths_and_padded(tmp_path, monkeypatch):
    lengths = np.array([3 + i % 3 for i in range(12)])
    values = np.concatenate([np.arange(n, dtype=np.float32) for n in lengths])
    np.savez(tmp_path / "r.npz", values=values, lengths=lengths, y=np.arange(12) % 2)
    manifest = collect(Data(source=str(tmp_path / "r.npz"), kind="sequence"), tmp_path / "r").manifest
    assert manifest["shape"] == [5, 1] and manifest["lengths"] == {"min": 3, "max": 5}
    # a flat run is checked against the bound on one sample before it is read: a few KB may claim GBs
    monkeypatch.setattr(read, "MAX_SAMPLE_BYTES", 4 * 4)
    capped = collect(Data(source=str(tmp_path / "r.npz"), kind="sequence"), tmp_path / "capped")
    quarantine = pq.read_table(Path(capped.path) / "quarantine.parquet").to_pylist()
    assert capped.manifest["shape"] == [4, 1] and quarantine == [
        {"id": f"r.npz[{i}]", "reason": "too long: 5 steps (at most 4)"} for i in (2, 5, 8, 11)]
    monkeypatch.undo()
    np.savez(tmp_path / "bad.npz", values=values, lengths=lengths + 1, y=np.arange(12) % 2)
    with pytest.raises(SourceError, match="lengths add up to 60 but values has 48 steps"):
        collect(Data(source=str(tmp_path / "bad.npz"), kind="sequence"), tmp_path / "bad")
    dense = np.random.default_rng(0).normal(size=(13, 7, 2)).astype(np.float32)
    dense[3, 2, 1] = np.inf
    dense[4, :, 0] = np.nan
    dense[5, 4:] = np.nan  # a shorter series
    np.savez(tmp_path / "d.npz", x=dense, y=np.arange(13) % 2)
    collected = collect(Data(source=str(tmp_path / "d.npz"), kind="sequence"), tmp_path / "d")
    assert collected.manifest["shape"] == [7, 2] and collected.manifest["channels"] == 2
    assert collected.manifest["lengths"] == {"min": 4, "max": 7}
    quarantine = pq.read_table(Path(collected.path) / "quarantine.parquet").to_pylist()
    assert quarantine == [{"id": "d.npz[3]", "reason": "infinite value"},
                          {"id": "d.npz[4]", "reason": "a channel with no values"}]


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_an_npz_of_series_is_listed_without_its_values_and_decoded_by_the_tasks(tmp_path, save):
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 40, size=300)
    series = [rng.normal(size=(n, 2)).astype(np.float32) for n in lengths]
    series[7][3, 1] = np.nan  # a gap, interpolated
    save(tmp_path / "f.npz", values=np.concatenate(series), lengths=lengths, y=np.arange(300) % 3)
    data = Data(source=str(tmp_path / "f.npz"), kind="sequence")
    _, listing = read_source(data)
    # the driver holds per series its label and where it lies in the flat values, never the values
    assert listing.keys[:2] == [("values", 0, lengths[0]), ("values", lengths[0], lengths[1])]
    assert len(pickle.dumps(listing.reader)) < 2048
    collected = collect(data, tmp_path / "out")
    assert collected.manifest["shape"] == [int(lengths.max()), 2]
    table = pq.read_table([f for split in ("train", "val", "test") for f in split_files(collected.path, split)]).to_pydict()
    got = dict(zip(table["id"], decode_samples(table["x"], collected.manifest)))
    assert len(got) == 300
    series[7][3, 1] = (series[7][2, 1] + series[7][4, 1]) / 2
    for i, one in enumerate(series):
        np.testing.assert_allclose(got[f"f.npz[{i}]"][: len(one)], one, rtol=1e-6)
        assert np.isnan(got[f"f.npz[{i}]"][len(one) :]).all()


@pytest.mark.usefixtures("ray_session")
def test_a_bad_ts_line_is_quarantined_and_a_bad_header_fails_collect_keeping_the_dataset(tmp_path):
    toy_archive(tmp_path / "archive")
    out = tmp_path / "data"
    runner = CliRunner()
    command = ["collect", "ucr:Toy", "--out", str(out), "--archive", str(tmp_path / "archive")]
    ok = runner.invoke(app, command)
    assert ok.exit_code == 0, ok.output
    before = json.loads((out / "manifest.json").read_text())
    train = tmp_path / "archive" / "Toy" / "Toy_TRAIN.ts"
    lines = train.read_text().splitlines()
    lines[10] = lines[10].replace(":a", ":z").replace(":b", ":z")
    train.write_text("\n".join(lines) + "\n")
    quarantined = runner.invoke(app, command)
    assert quarantined.exit_code == 0, quarantined.output
    assert "quarantined 1, hash" in quarantined.output and "quarantined 1: unknown label" in quarantined.output
    assert pq.read_table(out / "quarantine.parquet").to_pylist() == [
        {"id": "Toy_TRAIN.ts:11", "reason": "unknown label: 'z' is not in @classLabel"}
    ]
    assert (tmp_path / f"data@{before['hash'][:12]}").is_dir()  # the earlier version is kept beside it

    collected = json.loads((out / "manifest.json").read_text())
    train.write_text(train.read_text().replace("@classLabel true a b", "@classLabel true"))
    bad = runner.invoke(app, command)
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == [f"error: {train}:7: @classLabel true lists no class labels"]
    assert json.loads((out / "manifest.json").read_text()) == collected
    assert len(split_files(out, "train")) == 1


def test_collect_rejects_unknown_dataset_name():
    with pytest.raises(SourceError, match="ucr:NoSuchSet"):
        collect(Data(source="ucr:NoSuchSet"))


def test_one_bad_first_line_does_not_set_the_dimensions_of_the_rest(tmp_path):
    rows = ["1,2:3,4:a"] + [f"{i},{i + 1},{i + 2}:{'ab'[i % 2]}" for i in range(20)]
    series = read_series(ts_file(tmp_path / "x.ts", rows))
    assert len(series.values) == 20 and series.rejects == [(9, "wrong dimensions: 2, expected 1")]


@pytest.mark.usefixtures("ray_session")
def test_a_series_file_is_listed_a_line_at_a_time_and_its_series_decoded_by_the_tasks(tmp_path):
    # the driver keeps where each series' line starts, never its values; the tasks read those lines
    _, listing = read_source(Data(source="ucr:GunPoint"))
    assert {len(key) for key in listing.keys} == {3} and len(pickle.dumps(listing.reader)) < 2048
    collected = collect(Data(source="ucr:GunPoint"), tmp_path / "gp")
    expected = {}  # the files' data lines parsed independently: values:label after @data
    for path in find_dataset("GunPoint", None):
        lines = path.read_text().splitlines()
        start = next(n for n, row in enumerate(lines) if row.lower().startswith("@data")) + 1
        for n, row in enumerate(lines[start:], start + 1):
            values, label = row.rsplit(":", 1)
            expected[f"{path.name}:{n}"] = ([float(v) for v in values.split(",")], label)
    table = pq.read_table([f for split in ("train", "val", "test") for f in split_files(collected.path, split)]).to_pydict()
    classes = collected.manifest["classes"]
    got = {id_: (x[:, 0].tolist(), classes[y]) for id_, x, y in
           zip(table["id"], decode_samples(table["x"], collected.manifest), table["y"])}
    assert got.keys() == expected.keys() and len(got) == 200
    for id_, (values, label) in expected.items():
        assert got[id_][1] == label and np.allclose(got[id_][0], values, atol=1e-6)


def test_tables_and_series_files_read_through_pyarrow_as_at_a_remote_uri(tmp_path, monkeypatch):
    # s3:// or gs:// sources are opened by pyarrow, whose files have no readline: read as buffered streams
    rows = [f"{i},{i + 1},{i + 2}:{'ab'[i % 2]}" for i in range(40)]
    ts = ts_file(tmp_path / "x.ts", rows)
    (tmp_path / "t.csv").write_text("v,label\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(40)))
    monkeypatch.setattr(files, "local_source", lambda location: None)  # file:// through pyarrow's filesystem
    series = SeriesFile.open(ts.as_uri())
    listed = list(series.data_lines())
    assert [row[1] for row in series.rows_at(listed)] == ["ab"[i % 2] for i in range(40)]
    picked = listed[5:40:7]
    assert [row[0][:, 0].tolist() for row in series.rows_at(picked)] == [[i, i + 1, i + 2] for i in range(5, 40, 7)]
    keys = [key for key, _ in sources.csv_scan((tmp_path / "t.csv").as_uri(), ["label"])]
    assert [row for row in sources.csv_records((tmp_path / "t.csv").as_uri(), keys[3:40:9])] == \
        [[str(i), "ab"[i % 2]] for i in range(3, 40, 9)]


def test_a_series_file_cut_after_it_was_listed_fails_its_collect_task_in_one_line(tmp_path):
    path = ts_file(tmp_path / "x.ts", [f"{i},{i + 1}:{'ab'[i % 2]}" for i in range(30)])
    _, listing = read_source(Data(source=str(path)))
    part = Part(0, listing.reader, listing.keys, listing.ids, ["train"] * 30, [0] * 30, seed=0)
    listed, text = path.stat(), path.read_bytes()
    path.write_bytes(text[:-60])  # the last lines gone: fewer series than listed
    with pytest.raises(SourceError, match=r"x.ts: changed after it was listed: collect it again$"):
        write_part(part, str(tmp_path / "out"))
    last = text.rindex(b"\n", 0, len(text) - 1)
    path.write_bytes(text[:last] + b" " + text[last + 1 :])  # the last two lines one: the same size
    os.utime(path, ns=(listed.st_atime_ns, listed.st_mtime_ns))  # and the same time: a change its stamp cannot see
    with pytest.raises(SourceError, match=r"^the source changed while it was collected \(near record x.ts:9\)"):
        write_part(part, str(tmp_path / "out"))
