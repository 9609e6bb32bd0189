import struct
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from augtrain.config.spec import Data
from augtrain.datasets.collect import collect
from augtrain.datasets.format import decode_samples, read_manifest, split_files
from augtrain.datasets.sources import SourceError
from PIL import Image

# collect decodes in Ray Data tasks: one Ray for the session
pytestmark = pytest.mark.usefixtures("ray_session")


def write_digit_folder(root, digits, per_class=12, classes=(0, 1, 2), mode="L"):
    for label in classes:
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        for i, index in enumerate(np.flatnonzero(digits.target == label)[:per_class]):
            image = Image.fromarray(np.round(digits.images[index] * 255 / 16).astype(np.uint8))
            image.convert(mode).save(root / str(label) / f"{i}.png")
    return root


def huge_header_png(path, width=100_000, height=100_000):
    """A valid PNG header claiming a gigapixel image (a decompression bomb) with almost no data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b""))


def rows(path, split):
    return pq.read_table(split_files(path, split)).to_pylist()


def test_sklearn_digits_split_is_stratified_and_deterministic(tmp_path):
    first = collect(Data(source="sklearn-digits", seed=3), tmp_path / "a")
    again = collect(Data(source="sklearn-digits", seed=3), tmp_path / "b")
    other = collect(Data(source="sklearn-digits", seed=4), tmp_path / "c")
    manifest = first.manifest
    assert manifest["shape"] == [8, 8, 1] and manifest["dtype"] == "uint8"
    assert manifest["classes"] == [str(i) for i in range(10)]
    sizes = {split: sum(c.values()) for split, c in manifest["counts"].items()}
    assert sum(sizes.values()) == 1797 and sizes["test"] == 360
    for split in ("train", "test"):  # every class keeps its share in each split
        shares = np.array([manifest["counts"][split][c] for c in manifest["classes"]]) / sizes[split]
        assert np.abs(shares - 0.1).max() < 0.02
    assert again.manifest["hash"] == manifest["hash"]
    assert [r["id"] for r in rows(first.path, "test")] == [r["id"] for r in rows(again.path, "test")]
    assert other.manifest["hash"] != manifest["hash"]
    assert set(r["id"] for r in rows(first.path, "test")) != set(r["id"] for r in rows(other.path, "test"))


def test_collecting_again_is_skipped_and_a_new_version_keeps_the_old(tmp_path):
    out = tmp_path / "digits"
    first = collect(Data(source="sklearn-digits"), out)
    assert not first.skipped
    assert collect(Data(source="sklearn-digits"), out).skipped
    changed = collect(Data(source="sklearn-digits", seed=1), out)
    assert not changed.skipped and read_manifest(out)["hash"] == changed.manifest["hash"]
    kept = tmp_path / f"digits@{first.manifest['hash'][:12]}"
    assert read_manifest(kept)["hash"] == first.manifest["hash"]


def test_samples_round_trip_through_parquet(tmp_path, digits):
    collected = collect(Data(source="sklearn-digits"), tmp_path / "d")
    table = pq.read_table(split_files(collected.path, "train"))
    images = decode_samples(table.column("x").to_pylist(), collected.manifest)
    index = [int(i.split("/")[1]) for i in table.column("id").to_pylist()]
    expected = np.round(digits.images[index] * 255 / 16).astype(np.uint8)[..., None]
    np.testing.assert_array_equal(images, expected)
    assert table.column("y").to_pylist() == digits.target[index].tolist()


def test_image_folder_quarantines_bad_files_and_collects_the_rest(tmp_path, digits):
    root = write_digit_folder(tmp_path / "images", digits)
    (root / "0" / "empty.png").write_bytes(b"")
    (root / "1" / "garbage.png").write_bytes(b"this is not an image at all" * 10)
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8), dtype=np.uint8))
    noise.save(root / "1" / "full.png")
    data = (root / "1" / "full.png").read_bytes()
    (root / "1" / "full.png").unlink()
    (root / "2" / "truncated.png").write_bytes(data[: len(data) // 2])
    huge_header_png(root / "2" / "bomb.png")
    Image.new("CMYK", (8, 8)).save(root / "0" / "cmyk.jpg")
    Image.new("L", (16, 16)).save(root / "1" / "big.png")
    Image.new("RGB", (8, 8), "red").save(root / "2" / "color.png")

    collected = collect(Data(source=str(root)), tmp_path / "out")
    reasons = {r["id"]: r["reason"] for r in pq.read_table(Path(collected.path) / "quarantine.parquet").to_pylist()}
    assert reasons["0/empty.png"] == "empty file (0 bytes)"
    assert reasons["1/garbage.png"].startswith("not a readable image")
    assert reasons["2/truncated.png"].startswith("truncated or corrupt")
    assert reasons["2/bomb.png"].startswith("decompression bomb: Image size (10000000000 pixels)")
    assert reasons["0/cmyk.jpg"] == "wrong mode: CMYK (expected grey or RGB)"
    assert reasons["2/color.png"] == "wrong mode: 3-channel image in a 1-channel dataset"
    assert len(reasons) == 6 == collected.manifest["quarantined"]
    counts = collected.manifest["counts"]
    assert sum(sum(c.values()) for c in counts.values()) == 37  # the 16x16 image is resized, and said so
    assert collected.manifest["shape"] == [8, 8, 1]
    assert collected.note.startswith("images of 2 sizes (most common 8x8): all resized to 8x8")


def test_image_folder_rgb_and_resize(tmp_path, digits):
    root = write_digit_folder(tmp_path / "rgb", digits, mode="RGB")
    Image.new("L", (8, 8)).save(root / "0" / "grey.png")  # grey converts into an RGB dataset
    collected = collect(Data(source=str(root), resize=(16, 12)), tmp_path / "out")
    assert collected.manifest["shape"] == [16, 12, 3]
    assert collected.manifest["quarantined"] == 0
    assert sum(sum(c.values()) for c in collected.manifest["counts"].values()) == 37


def test_npz_source(tmp_path, digits):
    x = digits.images.astype(np.float32)
    x[5, 0, 0] = np.nan
    np.savez(tmp_path / "d.npz", x=x, y=digits.target)
    collected = collect(Data(source=str(tmp_path / "d.npz")), tmp_path / "out")
    assert collected.manifest["dtype"] == "float32" and collected.manifest["shape"] == [8, 8, 1]
    quarantine = pq.read_table(Path(collected.path) / "quarantine.parquet").to_pylist()
    assert quarantine == [{"id": "d.npz[5]", "reason": "non-finite values (NaN or inf)"}]


def test_csv_feature_columns_and_image_paths(tmp_path, digits):
    header = ",".join(f"p{i}" for i in range(64)) + ",label\n"
    lines = [",".join(map(str, row)) + f",{t}" for row, t in zip(digits.data[:200].astype(int), digits.target[:200])]
    fields = lines[3].split(",")
    lines[3] = ",".join(fields[:7] + ["oops"] + fields[8:])
    (tmp_path / "digits.csv").write_text(header + "\n".join(lines) + "\n")
    data = Data(source=str(tmp_path / "digits.csv"), image_shape=(8, 8, 1))
    collected = collect(data, tmp_path / "features")
    quarantine = pq.read_table(Path(collected.path) / "quarantine.parquet").to_pylist()
    assert quarantine == [{"id": "digits.csv:5", "reason": "missing or non-numeric value: column p7"}]
    assert collected.manifest["shape"] == [8, 8, 1]
    import pyarrow.csv as pacsv

    pq.write_table(pacsv.read_csv(tmp_path / "digits.csv"), tmp_path / "digits.parquet")
    as_parquet = collect(Data(source=str(tmp_path / "digits.parquet"), image_shape=(8, 8, 1)), tmp_path / "pq")
    assert as_parquet.manifest["counts"] == collected.manifest["counts"]

    write_digit_folder(tmp_path / "img", digits)
    files = sorted((tmp_path / "img").rglob("*.png"))
    table = "path,label\n" + "".join(f"{f.relative_to(tmp_path)},{f.parent.name}\n" for f in files) + "img/nope.png,1\n"
    (tmp_path / "index.csv").write_text(table)
    by_path = collect(Data(source=str(tmp_path / "index.csv"), path_column="path"), tmp_path / "paths")
    assert by_path.manifest["quarantined"] == 1
    assert Counter(by_path.manifest["classes"]) == Counter(["0", "1", "2"])


def test_bad_sources_fail_with_one_clear_message(tmp_path, digits):
    with pytest.raises(SourceError, match="no such file or folder"):
        collect(Data(source=str(tmp_path / "nowhere")), tmp_path / "o1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images found"):
        collect(Data(source=str(tmp_path / "empty")), tmp_path / "o2")
    write_digit_folder(tmp_path / "one", digits, classes=(4,))
    with pytest.raises(SourceError, match="a single class \\('4'\\)"):
        collect(Data(source=str(tmp_path / "one")), tmp_path / "o3")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(SourceError, match="not a collected dataset"):
        collect(Data(source="sklearn-digits"), tmp_path / "taken")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
