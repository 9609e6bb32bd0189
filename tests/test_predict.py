"""augtrain predict: batch inference from a bundle (in process, or Ray Data), bad inputs quarantined like collect does."""

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from augtrain.cli import app
from augtrain.datasets.format import decode_samples, read_manifest, split_files
from augtrain.modalities.sequence.ucr import find_dataset
from PIL import Image
from test_sources import short_ihdr_png
from typer.testing import CliRunner


def run_test_split(run_dir: Path):
    """The run's test split as (ids, samples, labels) straight from its collected dataset."""
    dataset = Path(json.loads((run_dir / "metrics.json").read_text())["dataset"]["path"])
    manifest = read_manifest(dataset)
    table = pq.ParquetDataset(split_files(dataset, "test")).read()
    samples = decode_samples(table.column("x").to_pylist(), manifest)
    classes = manifest["classes"]
    return samples, [classes[y] for y in table.column("y").to_pylist()]


def predict(*args):
    result = CliRunner().invoke(app, ["predict", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def test_predict_image_folder_matches_the_run_and_quarantines_bad_files(ray_session, finished_run, tmp_path):
    images, labels = run_test_split(finished_run)
    folder = tmp_path / "images"
    for i, (image, label) in enumerate(zip(images, labels)):
        (folder / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0]).save(folder / label / f"{i}.png")
    png = next(folder.rglob("*.png"))
    (folder / "3" / "truncated.png").write_bytes(png.read_bytes()[:40])
    (folder / "3" / "notes.png").write_text("not an image")
    (folder / "3" / "empty.png").write_bytes(b"")
    Image.new("L", (16, 16)).save(folder / "3" / "big.png")
    short_ihdr_png(folder / "3" / "short.png")
    os.mkfifo(folder / "3" / "fifo.png")  # opening it would block a data task forever
    (folder / "3" / "away.png").symlink_to(png.resolve().parents[2] / "elsewhere.png")
    (png.resolve().parents[2] / "elsewhere.png").write_bytes(png.read_bytes())

    out = tmp_path / "out" / "preds.parquet"
    output = predict(finished_run, folder, "--out", out)
    assert f"predicted {len(images)} input(s)" in output and "quarantined 7 input(s)" in output
    assert "in this process" in output  # a few hundred inputs, no cluster named: no Ray
    # on a cluster (here: the session's Ray, named) Ray Data tasks decode and an actor pool scores: the same rows
    address = ray_session.get_runtime_context().gcs_address
    assert "actor(s)" in predict(finished_run, folder, "--out", tmp_path / "ray" / "preds.parquet", "--address", address)
    for name in ("preds.parquet", "preds.quarantine.parquet"):
        here, there = (pq.read_table(tmp_path / side / name).sort_by("id") for side in ("out", "ray"))
        assert here.equals(there), name

    predictions = pq.read_table(out).to_pylist()
    assert len(predictions) == len(images) and {p["id"] for p in predictions} == {
        str(p.relative_to(folder)) for p in folder.rglob("*.png") if p.name[0].isdigit()
    }
    classes = [str(c) for c in range(10)]
    for row in predictions[:20]:
        probabilities = [row[f"p_{c}"] for c in classes]
        assert sum(probabilities) == pytest.approx(1, abs=1e-5)
        assert row["predicted"] == classes[probabilities.index(max(probabilities))] and row["probability"] == max(probabilities)
    accuracy = sum(p["predicted"] == p["label"] for p in predictions) / len(predictions)
    assert accuracy == json.loads((finished_run / "metrics.json").read_text())["test"]["accuracy"]

    quarantine = {r["id"]: r["reason"] for r in pq.read_table(tmp_path / "out" / "preds.quarantine.parquet").to_pylist()}
    assert quarantine["3/empty.png"] == "empty file (0 bytes)"
    assert quarantine["3/notes.png"].startswith("not a readable image")
    assert quarantine["3/truncated.png"].startswith(("truncated or corrupt", "not a readable image"))
    assert quarantine["3/big.png"] == "wrong shape: 16x16 (expected 8x8)"
    assert quarantine["3/short.png"].startswith("not a readable image: ValueError")
    assert quarantine["3/fifo.png"] == "not a regular file: FIFO"
    assert quarantine["3/away.png"].startswith("symlink outside the source folder")


def test_predict_takes_a_flat_folder_of_unlabelled_images(finished_run, tmp_path):
    images, labels = run_test_split(finished_run)
    flat, sorted_ = tmp_path / "flat", tmp_path / "sorted"
    for i, (image, label) in enumerate(zip(images[:40], labels)):
        (sorted_ / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0]).save(sorted_ / label / f"{i}.png")
        flat.mkdir(exist_ok=True)
        Image.fromarray(image[..., 0]).save(flat / f"{i}.png")
    assert "predicted 40 input(s)" in predict(finished_run, flat, "--out", tmp_path / "flat.parquet")
    unlabelled = pq.read_table(tmp_path / "flat.parquet")
    assert "label" not in unlabelled.column_names  # no class sub-folders: nothing to score against
    predict(finished_run, sorted_, "--out", tmp_path / "sorted.parquet")
    by_file = {Path(row["id"]).name: row["predicted"] for row in pq.read_table(tmp_path / "sorted.parquet").to_pylist()}
    assert {row["id"]: row["predicted"] for row in unlabelled.to_pylist()} == by_file


def test_predict_reads_a_compressed_npz_as_a_stored_one(finished_run, tmp_path):
    """Images in an .npz, its arrays compressed or stored: the same predictions, the run's test accuracy (a
    compressed array is inflated once into a scratch folder, as collect does, and the folder removed)."""
    images, labels = run_test_split(finished_run)
    np.savez(tmp_path / "stored.npz", x=images, y=np.array(labels))
    np.savez_compressed(tmp_path / "packed.npz", x=images, y=np.array(labels))
    scratch = set(Path(tempfile.gettempdir()).glob("augtrain-predict-*"))
    got = {}
    for name in ("stored", "packed"):
        predict(finished_run, tmp_path / f"{name}.npz", "--out", tmp_path / f"{name}.parquet")
        got[name] = [(row["id"].split("[")[1], row["label"], row["predicted"], row["probability"])
                     for row in pq.read_table(tmp_path / f"{name}.parquet").to_pylist()]
    assert got["packed"] == got["stored"] and len(got["stored"]) == len(images)
    accuracy = sum(label == predicted for _, label, predicted, _ in got["stored"]) / len(images)
    assert accuracy == json.loads((finished_run / "metrics.json").read_text())["test"]["accuracy"]
    assert set(Path(tempfile.gettempdir()).glob("augtrain-predict-*")) == scratch


def test_predict_series_file_matches_the_run(finished_sequence_run, tmp_path):
    _, test_file = find_dataset("GunPoint", None)
    out = tmp_path / "preds.parquet"
    predict(finished_sequence_run / "model", test_file, "--out", out)
    predictions = pq.read_table(out).to_pylist()
    assert len(predictions) == 150 and predictions[0]["id"].startswith("GunPoint_TEST.ts:")
    accuracy = sum(p["predicted"] == p["label"] for p in predictions) / len(predictions)
    assert accuracy == json.loads((finished_sequence_run / "metrics.json").read_text())["test"]["accuracy"]
    assert pq.read_table(tmp_path / "preds.quarantine.parquet").num_rows == 0


def test_predict_refuses_inputs_that_do_not_fit_the_model(finished_run, finished_sequence_run, tmp_path):
    _, test_file = find_dataset("GunPoint", None)
    result = CliRunner().invoke(app, ["predict", str(finished_run), str(test_file), "--out", str(tmp_path / "p.parquet")])
    assert result.exit_code == 2 and "do not fit the model" in result.output and "Traceback" not in result.output
    table = tmp_path / "rows.csv"
    table.write_text("a,b\n1,2\n")
    result = CliRunner().invoke(app, ["predict", str(finished_run), str(table), "--out", str(tmp_path / "p.parquet")])
    assert result.exit_code == 2 and "images of shape [1, 2, 1] do not fit the model" in result.output
    assert not (tmp_path / "p.parquet").exists()


def test_explain_writes_attribution_maps_for_images_and_series(finished_run, finished_sequence_run, tmp_path):
    images, labels = run_test_split(finished_run)
    folder = tmp_path / "images"
    for i, (image, label) in enumerate(zip(images[:3], labels)):
        (folder / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0]).save(folder / label / f"{i}.png")
    (folder / labels[0] / "broken.png").write_text("no image")
    _, test_file = find_dataset("GunPoint", None)
    for bundle, source, count in ((finished_run, folder, 3), (finished_sequence_run, test_file, 4)):
        out = tmp_path / bundle.name
        result = CliRunner().invoke(app, ["explain", str(bundle), str(source), "--out", str(out), "--limit", "4"])
        assert result.exit_code == 0, result.output
        assert f"attributions of {count} input(s)" in result.output
        saved = np.load(out / "attributions.npz")
        assert saved["attributions"].shape == saved["inputs"].shape and len(saved["ids"]) == count
        assert np.isfinite(saved["attributions"]).all() and np.abs(saved["attributions"]).sum() > 0
        assert "broken.png" not in " ".join(saved["ids"])  # unreadable inputs are skipped, as predict quarantines them
        assert Image.open(out / "attributions.png").size[0] > 300
    # every run already drew its test samples' maps for the report
    assert Image.open(finished_run / "explain" / "test_samples.png").size[0] > 300



def test_a_model_trained_on_resized_images_resizes_what_it_is_given_and_others_refuse_another_size(ray_session, tmp_path):
    """Images of mixed sizes (or data.resize) are resized at collect; the manifest and the model's bundle say
    so, and predict and serve resize their inputs as training did. Images all of one size are not resized,
    and an input of another size is refused."""
    import io

    from augtrain.config.spec import Data
    from augtrain.datasets.collect import collect
    from augtrain.modalities import for_manifest

    rng = np.random.default_rng(0)
    for folder, sizes in (("mixed", [(30, 30), (40, 40)]), ("same", [(30, 30)])):
        for i in range(8):
            (tmp_path / folder / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
            image = rng.integers(0, 255, sizes[(i // 2) % len(sizes)], dtype=np.uint8)
            Image.fromarray(image).save(tmp_path / folder / f"c{i % 2}" / f"{i}.png")
    photo = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 64), dtype=np.uint8)).save(photo, format="PNG")
    mixed = collect(Data(source=str(tmp_path / "mixed")), tmp_path / "mixed_out").manifest
    resized = for_manifest(mixed)
    assert mixed["resized"] is True and resized.binding(mixed) == {"resized": True}
    sample, reason = resized.decode_input(photo.getvalue(), Data(source="x"), mixed["shape"])
    assert reason == "" and list(sample.shape) == mixed["shape"] == [35, 35, 1]
    with pytest.raises(ValueError, match="resized must be true or false"):
        resized.bind({"resized": 1})

    one_size = collect(Data(source=str(tmp_path / "same")), tmp_path / "one_out").manifest
    assert "resized" not in one_size and for_manifest(one_size).binding(one_size) == {}
    assert for_manifest(one_size).decode_input(photo.getvalue(), Data(source="x"), [30, 30, 1]) == (
        None, "wrong shape: 64x48 (expected 30x30)")
