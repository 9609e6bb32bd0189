"""Audio: recordings the tests generate (tests/sounds.py) collected, quarantined, augmented, trained on,
predicted and exported; corrupt files of every kind quarantined without losing a good one."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile
import torch
from augtrain.artifacts.bundle import BundleError, load_bundle
from augtrain.cli import app
from augtrain.config.spec import Data, Spectrogram
from augtrain.datasets.collect import collect
from augtrain.datasets.format import decode_samples, split_files
from augtrain.modalities import check_transform
from augtrain.modalities.audio import AUDIO
from augtrain.modalities.audio.augment import AudioAugmenter
from augtrain.modalities.audio.read import fit
from conftest import exports_with_parity
from PIL import Image
from sounds import CLASSES, write_recordings
from typer.testing import CliRunner

pytestmark = pytest.mark.usefixtures("ray_session")
SETTINGS = {"sample_rate": 8000, "spectrogram": {"n_mels": 32, "n_fft": 256, "hop_length": 80}}


def stored(dataset: Path) -> dict[str, np.ndarray]:
    """{id: waveform} of every split of a collected dataset."""
    manifest = json.loads((dataset / "manifest.json").read_text())
    table = pq.ParquetDataset([f for s in ("train", "val", "test") for f in split_files(dataset, s)]).read()
    return dict(zip(table.column("id").to_pylist(), decode_samples(table.column("x").to_pylist(), manifest)))


def test_collect_decodes_every_format_and_quarantines_every_bad_file(tmp_path):
    good = write_recordings(tmp_path / "src", 6)
    bad = tmp_path / "src" / "up"
    (bad / "empty.wav").write_bytes(b"")
    (bad / "text.wav").write_text("not a recording")
    (bad / "half.flac").write_bytes(good[1].read_bytes()[:200])  # a FLAC cut inside its first frame
    soundfile.write(bad / "silent.wav", np.zeros((0, 1)), 8000)  # a valid header and no samples
    soundfile.write(bad / "long.wav", np.zeros(8000 * 12), 8000)
    Image.new("L", (8, 8)).save(bad / "picture.png")
    (tmp_path / "src" / "loose.wav").write_bytes(good[0].read_bytes())  # not in a class folder

    data = Data(source=str(tmp_path / "src"), sample_rate=8000, max_duration=10)
    collected = collect(data, tmp_path / "out")
    manifest = collected.manifest
    assert manifest["kind"] == "audio" and manifest["sample_rate"] == 8000
    # no data.duration: the length 95 % of the recordings fit in (tests/sounds.py writes 0.5-1.3 s)
    assert 0.5 <= manifest["duration"] <= 1.3 and "cut or padded" in collected.note
    assert manifest["shape"] == [round(manifest["duration"] * 8000), 1]

    rows = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    quarantine = {r["id"]: r["reason"] for r in rows}
    assert quarantine["up/empty.wav"] == "empty file (0 bytes)"
    assert quarantine["up/text.wav"].startswith("not a readable recording: Format not recognised")
    assert quarantine["up/silent.wav"] == "empty recording (0 frames)"
    assert quarantine["up/long.wav"].startswith("too long: 12.0 s exceeds data.max_duration=10")
    assert quarantine["up/picture.png"].startswith("not a readable recording")
    assert quarantine["up/half.flac"].startswith(("not a readable recording", "truncated or corrupt", "empty"))
    assert quarantine["loose.wav"] == "not in a class sub-folder"
    assert len(quarantine) == 7 == manifest["quarantined"]

    # every good file is collected once, as a mono waveform of the dataset's rate and length
    waves = stored(tmp_path / "out")
    assert set(waves) == {str(p.relative_to(tmp_path / "src")) for p in good}
    peaks = {id_: np.abs(w).max() for id_, w in waves.items()}
    assert all(0.1 < peak <= 1.0 for peak in peaks.values())


def test_a_recording_too_large_to_decode_out_of_range_or_under_one_sample_is_quarantined(tmp_path):
    """A few KB of FLAC can claim GBs of samples; float samples near float32's limit overflow the mix-down
    and the spectrogram; a recording of a sample at 768 kHz resamples to nothing at 1 kHz."""
    from augtrain.modalities.audio.read import read_recording

    with soundfile.SoundFile(tmp_path / "huge.flac", "w", 192000, 8, format="FLAC") as sound:
        for _ in range(44):  # 44 s of 8 channels: 270 MB decoded, 68 KB of FLAC
            sound.write(np.zeros((192000, 8), dtype=np.float32))
    soundfile.write(tmp_path / "loud.wav", np.full((800, 2), 3e38, dtype=np.float32), 8000, subtype="FLOAT")
    soundfile.write(tmp_path / "tiny.wav", np.full(1, 0.5, dtype=np.float32), 768000, subtype="FLOAT")
    assert read_recording(str(tmp_path / "huge.flac"), 8000, 8000, 600) == (
        None, "too large: 8448000 frames x 8 channels decode to 270,336,000 bytes (at most 268,435,456)")
    assert read_recording(str(tmp_path / "loud.wav"), 8000, 8000, 600) == (
        None, "out-of-range samples: peak 3e+38 (a recording's samples are about -1 to 1)")
    assert read_recording(str(tmp_path / "tiny.wav"), 1000, 1000, 600) == (
        None, "empty recording: shorter than one sample at 1000 Hz")


def test_a_table_of_recordings_keeps_its_splits(tmp_path):
    files = write_recordings(tmp_path / "src", 4)
    lines = ["file,label,split"] + [f"{p.relative_to(tmp_path / 'src')},{p.parent.name},{'test' if i % 4 == 0 else ''}"
                                    for i, p in enumerate(files)]
    lines.append("../outside.wav,up,")
    (tmp_path / "src" / "index.csv").write_text("\n".join(lines) + "\n")
    data = Data(source=str(tmp_path / "src" / "index.csv"), kind="audio", path_column="file", split_column="split",
                duration=0.5, **SETTINGS)
    manifest = collect(data, tmp_path / "out").manifest
    assert manifest["shape"] == [4000, 1] and sum(manifest["counts"]["test"].values()) == 3
    assert manifest["quarantined"] == 1
    with pytest.raises(ValueError, match="set data.path_column"):
        collect(Data(source=str(tmp_path / "src" / "index.csv"), kind="audio"), tmp_path / "out2")


def test_a_long_recording_keeps_its_loudest_stretch_and_a_short_one_is_centred():
    wave = np.zeros(1000, np.float32)
    wave[600:700] = 1.0
    assert np.array_equal(fit(wave, 100), np.ones(100, np.float32))
    short = fit(np.ones(10, np.float32), 16)
    assert np.array_equal(short, np.r_[np.zeros(3), np.ones(10), np.zeros(3)])


@pytest.mark.parametrize("features", ["logmel", "mfcc"])
def test_every_audio_model_takes_the_spectrogram_the_data_workers_ship(features):
    bound = AUDIO.bind({"sample_rate": 8000, "spectrogram": {**SETTINGS["spectrogram"], "features": features}})
    waves = np.random.default_rng(0).normal(0, 0.1, (3, 4000, 1)).astype(np.float32)
    x = bound.ship(waves, {"mean": [-40.0], "std": [20.0]})
    assert x.shape == (3, 20 if features == "mfcc" else 32, 51) and x.dtype == np.float32
    for name in bound.model_names:
        model = bound.build_model(name, {}, [4000, 1], len(CLASSES))
        logits = model(torch.from_numpy(x))
        assert logits.shape == (3, len(CLASSES))
        logits.sum().backward()  # trainable end to end


def test_augmentation_is_fresh_unless_seeded_and_masks_stay_in_bounds():
    transforms = [{"name": "Gain", "min_gain_db": -6, "max_gain_db": 6, "p": 1.0},
                  {"name": "SpecFrequencyMask", "min_mask_fraction": 0.25, "max_mask_fraction": 0.25, "p": 1.0},
                  {"name": "SpecTimeMask", "max_mask_fraction": 0.2, "masks": 2, "p": 1.0}]
    waves = np.random.default_rng(1).normal(0, 0.1, (4, 4000, 1)).astype(np.float32)
    one, two = (AudioAugmenter(transforms, 8000, seed=3).waveforms(waves) for _ in range(2))
    assert np.array_equal(one, two) and not np.array_equal(one, waves)
    ratio = one[:, :, 0] / waves[:, :, 0]
    assert np.allclose(ratio, ratio[:, :1], rtol=1e-4)  # a gain: one factor per recording
    x = np.ones((4, 32, 51), np.float32)
    masked = AudioAugmenter(transforms, 8000, seed=3).spectrograms(x)
    bands = (masked == 0).all(2).sum(1)
    assert (bands == 8).all()  # exactly a quarter of the bands, in every spectrogram
    frames = ((masked == 0).all(1)).sum(1)
    assert ((frames >= 0) & (frames <= 2 * 10)).all() and (x == 1).all()
    for name, params, problem in (("Gain", {"loudness": 3}, "loudness"), ("SpecTimeMask", {"p": 2}, "p"),
                                  ("SpecFrequencyMask", {"min_mask_fraction": 0.5, "max_mask_fraction": 0.1}, "min")):
        with pytest.raises(ValueError, match=f"{name}: .*{problem}"):
            check_transform(name, params)


def test_spectrogram_settings_are_checked():
    with pytest.raises(ValueError, match="n_mfcc"):
        Spectrogram(features="mfcc", n_mels=8, n_mfcc=13)
    with pytest.raises(ValueError, match="f_max"):
        Spectrogram(f_min=4000, f_max=1000)


JOB = """
data: {{source: {source}, sample_rate: 8000, duration: 1.0, spectrogram: {{n_mels: 32, n_fft: 256, hop_length: 80}},
        test_size: 0.25, seed: 0}}
augment:
  - {{name: Gain, min_gain_db: -6, max_gain_db: 6, p: 0.5}}
  - {{name: AddGaussianSNR, min_snr_db: 15, max_snr_db: 40, p: 0.5}}
  - {{name: Shift, min_shift: -0.1, max_shift: 0.1, p: 0.5}}
  - {{name: SpecFrequencyMask, max_mask_fraction: 0.15, p: 0.5}}
  - {{name: SpecTimeMask, max_mask_fraction: 0.15, p: 0.5}}
model: {{name: audio_cnn, params: {{width: 16}}}}
train: {{epochs: 8, lr: 0.003, batch_size: 16}}
run: {{name: calls}}
"""


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    write_recordings(root / "src", 30, split_folders=True)
    (root / "job.yaml").write_text(JOB.format(source=root / "src"))
    result = CliRunner().invoke(app, ["run", str(root / "job.yaml"), f"run.storage_path={root / 'runs'}",
                                      f"data.path={root / 'data'}"])
    assert result.exit_code == 0, result.output
    return root, Path(next(line for line in result.output.splitlines() if line.startswith("run dir: "))[9:])


def test_a_short_run_on_generated_calls_learns_them(audio_run):
    root, run_dir = audio_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # the calls differ in how their pitch moves: 8 epochs on 72 training recordings learn them; the 18
    # test recordings are 0.056 each (measured: 1.00; 5 epochs on 45 recordings once scored 0.78 of 9)
    assert metrics["test"]["accuracy"] >= 0.9 and sum(metrics["test"]["confusion_matrix"][0]) > 0
    report = (run_dir / "report.html").read_text()
    assert report.count("data:image/png") >= 4  # curves, confusion matrix, raw and augmented recordings
    assert (run_dir / "explain" / "test_samples.png").stat().st_size > 0


def test_predict_on_recordings_matches_the_labels_and_quarantines_bad_files(audio_run, tmp_path):
    root, run_dir = audio_run
    folder = tmp_path / "new"
    shutil.copytree(root / "src" / "test", folder)
    (folder / "up" / "broken.ogg").write_bytes(b"OggS" + bytes(60))
    (folder / "up" / "empty.wav").write_bytes(b"")
    result = CliRunner().invoke(app, ["predict", str(run_dir), str(folder), "--out", str(tmp_path / "p.parquet")])
    assert result.exit_code == 0, result.output
    rows = pq.read_table(tmp_path / "p.parquet").to_pylist()
    assert len(rows) == len(list((root / "src" / "test").rglob("*.*"))) and "quarantined 2 input(s)" in result.output
    assert np.mean([r["predicted"] == r["label"] for r in rows]) >= 0.9


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch_on_spectrograms(audio_run, fmt):
    exports_with_parity(audio_run[1], fmt)


def test_a_bundle_with_hostile_audio_settings_is_refused(audio_run, tmp_path):
    _, run_dir = audio_run
    bundle = tmp_path / "model"
    shutil.copytree(run_dir / "model", bundle)
    layout = json.loads((bundle / "input.json").read_text())
    assert load_bundle(bundle).modality.rate == 8000
    for field, value, problem in (("sample_rate", "8000", "sample_rate"), ("spectrogram", {"n_mels": 10**6}, "n_mels")):
        (bundle / "input.json").write_text(json.dumps({**layout, field: value}))
        manifest = json.loads((bundle / "manifest.json").read_text())
        manifest["files"]["input.json"] = hashlib.sha256((bundle / "input.json").read_bytes()).hexdigest()
        (bundle / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(BundleError, match=f"input.json: .*{problem}"):
            load_bundle(bundle)
