"""Collect as a Ray Data job: splits a source already has, sources at URIs, tables read in parts, images
of mixed sizes, and the same dataset however it is collected."""

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import pytest
from augtrain.config.spec import Data
from augtrain.datasets import collect as collecting
from augtrain.datasets import sources
from augtrain.datasets.collect import ROWS_PER_PART, SHUFFLE_PARTS, collect
from augtrain.datasets.files import walk, walk_uri
from augtrain.datasets.format import split_files
from augtrain.modalities import read_source
from PIL import Image
from test_collect import write_digit_folder

pytestmark = pytest.mark.usefixtures("ray_session")


def split_ids(path, split) -> list[str]:
    return [row["id"] for f in sorted(Path(path).glob(f"part-{split}-*.parquet")) for row in pq.read_table(f).to_pylist()]


def test_an_image_folder_laid_out_by_split_keeps_its_splits(tmp_path, digits):
    root = tmp_path / "kaggle"
    write_digit_folder(root / "train", digits, per_class=20)
    write_digit_folder(root / "val", digits, per_class=4)
    write_digit_folder(root / "test", digits, per_class=6)
    collected = collect(Data(source=str(root)), tmp_path / "out")
    counts = {split: sum(c.values()) for split, c in collected.manifest["counts"].items()}
    assert counts == {"train": 60, "val": 12, "test": 18} and collected.manifest["classes"] == ["0", "1", "2"]
    for split in ("train", "val", "test"):
        assert {i.split("/")[0] for i in split_ids(collected.path, split)} == {split}

    # train/ and test/ only: validation is drawn from train/, stratified
    (root / "val").rename(tmp_path / "moved")
    collected = collect(Data(source=str(root), val_size=0.25), tmp_path / "out2")
    counts = {split: sum(c.values()) for split, c in collected.manifest["counts"].items()}
    assert counts == {"train": 45, "val": 15, "test": 18}
    assert {i.split("/")[0] for i in split_ids(collected.path, "val")} == {"train"}


def test_a_compressed_npz_is_inflated_once_for_the_tasks_and_collects_as_a_stored_one(tmp_path, digits):
    x, y = digits.images.astype(np.uint8), digits.target
    np.savez(tmp_path / "stored.npz", x=x, y=y)
    np.savez_compressed(tmp_path / "packed.npz", x=x, y=y, x_test=x[:50], y_test=y[:50])
    _, stored = read_source(Data(source=str(tmp_path / "stored.npz")))
    stored.reader.staged(str(tmp_path / "scratch"))
    assert stored.reader.inflated == {} and not (tmp_path / "scratch").exists()  # a stored member is read in place
    _, packed = read_source(Data(source=str(tmp_path / "packed.npz")))
    packed.reader.staged(str(tmp_path / "scratch"))
    assert sorted(packed.reader.inflated) == ["x", "x_test"]
    np.testing.assert_array_equal(np.load(packed.reader.inflated["x_test"]), x[:50])
    (seven, reason), (three, _) = packed.reader.read([("x", 7, 1), ("x_test", 3, 1)])
    assert reason == "" and np.array_equal(seven, x[7][..., None]) and np.array_equal(three, x[3][..., None])

    got = {}
    for name in ("stored", "packed"):
        collected = collect(Data(source=str(tmp_path / f"{name}.npz")), tmp_path / name)
        assert not any(p.is_dir() for p in Path(collected.path).iterdir())  # the scratch copy gone with the staging
        table = pq.read_table(split_files(collected.path, "train")).to_pydict()
        got[name] = dict(zip((i.split("[")[1] for i in table["id"]), table["x"]))  # x's row -> its bytes
    common = got["stored"].keys() & got["packed"].keys()
    assert len(common) > 500 and all(got["stored"][i] == got["packed"][i] for i in common)


def test_a_table_split_column_and_an_npz_test_split_are_kept(tmp_path, digits):
    splits = ["train", "val", "test", "", "Test", "bogus"] * 20
    rows = [",".join(map(str, x.astype(int))) + f",{y},{s}" for x, y, s in zip(digits.data, digits.target % 2, splits)]
    header = ",".join(f"p{i}" for i in range(64)) + ",label,part"
    (tmp_path / "t.csv").write_text("\n".join([header, *rows]) + "\n")
    collected = collect(Data(source=str(tmp_path / "t.csv"), split_column="part"), tmp_path / "out")
    counts = {split: sum(c.values()) for split, c in collected.manifest["counts"].items()}
    assert counts == {"train": 20 + 20, "val": 20, "test": 40}  # "" drawn into train (test and val are given)
    reasons = pq.read_table(Path(collected.path) / "quarantine.parquet").column("reason").to_pylist()
    assert reasons == ["unknown split: 'bogus' in column part (expected train, val or test)"] * 20
    assert collected.manifest["shape"] == [1, 64, 1]

    np.savez(tmp_path / "d.npz", x=digits.images[:300], y=digits.target[:300], x_test=digits.images[300:400],
             y_test=digits.target[300:400])
    collected = collect(Data(source=str(tmp_path / "d.npz")), tmp_path / "npz")
    assert sum(collected.manifest["counts"]["test"].values()) == 100
    assert all(i.startswith("d.npz:test[") for i in split_ids(collected.path, "test"))


def test_a_source_at_a_file_uri_collects_as_its_path_does(tmp_path, digits):
    root = write_digit_folder(tmp_path / "images", digits)
    (root / "1" / "junk.png").write_bytes(b"not an image")
    by_path = collect(Data(source=str(root)), tmp_path / "a")
    by_uri = collect(Data(source=root.as_uri()), tmp_path / "b")
    assert by_uri.manifest["hash"] == by_path.manifest["hash"] and by_uri.manifest["quarantined"] == 1
    np.savez(tmp_path / "d.npz", x=digits.images[:200], y=digits.target[:200])
    assert sum(sum(c.values()) for c in collect(Data(source=(tmp_path / "d.npz").as_uri()), tmp_path / "c")
               .manifest["counts"].values()) == 200
    # remote storage is listed through pyarrow's filesystems: the same files as the hardened local walk
    assert [i for i, _ in walk_uri(root.as_uri()).files] == [i for i, _ in walk(root).files]


def test_a_large_table_is_listed_small_and_decoded_in_parts(tmp_path, digits):
    x = np.tile(digits.data, (2, 1))[:3000]  # 3000 rows: three parts of at most 1024
    y = np.tile(digits.target, 2)[:3000]
    header = ",".join(f"p{i}" for i in range(64)) + ",label"
    (tmp_path / "big.csv").write_text("\n".join([header, *(",".join(map(str, r.astype(int))) + f",{t}" for r, t in zip(x, y))]) + "\n")
    data = Data(source=str(tmp_path / "big.csv"))
    _, listing = read_source(data)
    # the driver holds per row a label and where the row starts (line, byte offset), never its values
    assert listing.keys[:2] == [(2, len(header) + 1), (3, len(header) + 1 + len(",".join(map(str, x[0].astype(int)))) + 3)]
    assert len(pickle.dumps(listing.reader)) < 2048
    collected = collect(data, tmp_path / "out")
    shards = sorted(Path(collected.path).glob("part-*.parquet"))
    parts = {}
    for shard in shards:  # part-<split>-<part>.parquet: what one task decoded
        lines = [int(i.rsplit(":", 1)[1]) for i in pq.read_table(shard).column("id").to_pylist()]
        parts.setdefault(shard.stem.rsplit("-", 1)[1], []).extend(lines)
    assert len(parts) == 3
    for lines in parts.values():  # a task decodes its own rows only, read forward within a window of parts
        assert len(lines) <= ROWS_PER_PART and max(lines) - min(lines) < ROWS_PER_PART * SHUFFLE_PARTS
    assert sum(len(lines) for lines in parts.values()) == 3000


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_table_sorted_by_class_is_cut_into_parts_that_each_hold_every_class(tmp_path, digits, monkeypatch, suffix):
    # parts of 100 rows, so the 3,000 rows span 30 parts, beyond the shuffle window of 16 parts: shuffled
    # within windows alone, each part of a table sorted by class held one or two classes
    monkeypatch.setattr(collecting, "ROWS_PER_PART", 100)
    monkeypatch.setattr(sources, "SEEK_GAP", 2048)  # a few CSV rows: the readers below seek between runs
    order = np.argsort(np.tile(digits.target, 2)[:3000], kind="stable")
    x, y = np.tile(digits.data, (2, 1))[:3000][order].astype(int), np.tile(digits.target, 2)[:3000][order]
    columns = {f"p{i}": x[:, i] for i in range(64)} | {"label": y}
    if suffix == "csv":
        pyarrow.csv.write_csv(pa.table(columns), tmp_path / "sorted.csv")
    else:  # row groups of 128 rows: a part reads only the groups holding its rows
        pq.write_table(pa.table(columns), tmp_path / "sorted.parquet", row_group_size=128)
    _, listing = read_source(Data(source=str(tmp_path / f"sorted.{suffix}")))
    parts = collecting._parts(listing, np.array(["train"] * 3000), [str(c) for c in range(10)], seed=0)
    assert len(parts) == 30 and sorted(i for p in parts for i in p.ids) == sorted(listing.ids)
    row_of = {id_: n for n, id_ in enumerate(listing.ids)}
    for part in parts:
        share = np.bincount(y, minlength=10) * len(part.ys) / 3000  # each class in proportion
        assert np.abs(np.bincount(part.ys, minlength=10) - share).max() < 2
        assert part.keys == sorted(part.keys)  # read forward
        read = np.array([sample for sample, reason in part.reader.read(part.keys)])
        assert read.reshape(len(read), -1).astype(int).tolist() == x[[row_of[i] for i in part.ids]].tolist()


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_table_rewritten_after_it_was_listed_is_refused_not_read_as_other_rows(tmp_path, suffix):
    # the same rows in another order: as many rows as listed (the count check passes), each key now another row
    table = tmp_path / f"t.{suffix}"
    write = pyarrow.csv.write_csv if suffix == "csv" else pq.write_table
    write(pa.table({"v": np.arange(40), "label": np.arange(40) % 2}), table)
    _, listing = read_source(Data(source=str(table)))
    part = collecting.Part(0, listing.reader, listing.keys, listing.ids, ["train"] * 40, listing.labels, seed=0)
    before = table.stat().st_mtime_ns
    write(pa.table({"v": np.arange(40)[::-1], "label": np.arange(40)[::-1] % 2}), table)
    os.utime(table, ns=(before + 10**9, before + 10**9))  # a second later, as a rewrite after listing would be
    with pytest.raises(sources.SourceError, match=rf"t.{suffix}: changed after it was listed: collect it again$"):
        collecting.write_part(part, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_images_of_mixed_sizes_are_resized_to_their_median_and_said_so(tmp_path):
    from sklearn.datasets import load_sample_image

    photo = load_sample_image("china.jpg")
    rng = np.random.default_rng(0)
    for i in range(30):
        w, h = int(rng.integers(120, 400)), int(rng.integers(100, 300))
        left, top = int(rng.integers(0, photo.shape[1] - w)), int(rng.integers(0, photo.shape[0] - h))
        (tmp_path / "photos" / f"c{i % 3}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo[top : top + h, left : left + w]).save(tmp_path / "photos" / f"c{i % 3}" / f"{i}.jpg")
    collected = collect(Data(source=str(tmp_path / "photos")), tmp_path / "out")
    assert collected.manifest["quarantined"] == 0
    assert sum(sum(c.values()) for c in collected.manifest["counts"].values()) == 30
    height, width, channels = collected.manifest["shape"]
    assert max(height, width) <= 256 and channels == 3
    assert collected.note.startswith("images of 30 sizes") and f"all resized to {width}x{height}" in collected.note


def test_collecting_twice_writes_identical_shards(tmp_path, digits):
    root = write_digit_folder(tmp_path / "images", digits, per_class=40)
    (root / "2" / "junk.png").write_bytes(b"not an image")

    def files(path):
        return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in Path(path).glob("*.parquet")}

    first, second = collect(Data(source=str(root)), tmp_path / "a"), collect(Data(source=str(root)), tmp_path / "b")
    assert first.manifest["hash"] == second.manifest["hash"]
    assert files(first.path) == files(second.path) and len(files(first.path)) == 4  # 3 splits + quarantine


def test_a_series_file_at_a_file_uri_collects(tmp_path):
    from augtrain.modalities.sequence.ucr import find_dataset

    train, _ = find_dataset("GunPoint", None)
    by_uri = collect(Data(source=train.as_uri()), tmp_path / "uri")
    assert by_uri.manifest["kind"] == "sequence" and sum(by_uri.manifest["counts"]["train"].values()) > 0
    assert by_uri.manifest["hash"] == collect(Data(source=str(train)), tmp_path / "path").manifest["hash"]


def test_an_npz_header_claiming_huge_samples_is_one_error(tmp_path):
    import io
    import zipfile

    from augtrain.datasets.sources import SourceError

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (2, 100_000, 100_000)})
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue() + b"\0" * 64)
        buffer = io.BytesIO()
        np.save(buffer, np.array([0, 1]))
        archive.writestr("y.npy", buffer.getvalue())
    with pytest.raises(SourceError, match=r"huge.npz: x holds samples of shape \(100000, 100000\), over 256 MiB each"):
        collect(Data(source=str(tmp_path / "huge.npz")), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_folder_listed_class_by_class_is_written_shuffled(tmp_path, digits):
    # the trainer shuffles within chunks of batches: a shard holding one class after another would feed
    # it one class at a time (FSDD, its files sorted by digit, trained to chance that way)
    for i, (image, label) in enumerate(zip(digits.images[:300], digits.target[:300])):
        (tmp_path / "src" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.uint8(image * 15)).save(tmp_path / "src" / str(label) / f"{i:03d}.png")
    collected = collect(Data(source=str(tmp_path / "src"), resize=(8, 8), channels=1), tmp_path / "out")
    (shard,) = Path(collected.path).glob("part-train-*.parquet")
    labels = pq.read_table(shard).column("y").to_pylist()
    assert len(set(labels[:40])) >= 7 and labels != sorted(labels)
