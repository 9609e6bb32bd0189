"""Bundles load only what their manifest vouches for, and never unpickle."""

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from augtrain.bundle import WEIGHTS, BundleError, _sha256, export_bundle, load_bundle
from augtrain.models import build_model
from augtrain.spec import parse_job

DATASET = {"classes": [str(i) for i in range(10)], "hash": "ab" * 32, "shape": [8, 8, 1], "dtype": "uint8"}
STATS = {"mean": [0.3], "std": [0.4], "hash": "ab" * 32}


@pytest.fixture
def bundle_dir(tmp_path):
    model = build_model("cnn", {}, (8, 8, 1), 10)
    save_file(model.state_dict(), str(tmp_path / "weights.safetensors"))
    job = parse_job({"data": {"source": "sklearn-digits"}})
    folder = export_bundle(tmp_path, job, DATASET, STATS, tmp_path / "weights.safetensors", {"test": {"accuracy": 0.5}})
    return folder, model


def test_bundle_round_trip(bundle_dir):
    folder, model = bundle_dir
    bundle = load_bundle(folder.parent)  # a run dir works as well as the bundle itself
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(bundle.model(x), model.eval()(x))
    assert bundle.classes == DATASET["classes"] and bundle.stats == {"mean": [0.3], "std": [0.4]}
    assert bundle.manifest["dataset_hash"] == DATASET["hash"] and bundle.job.model.name == "cnn"
    assert set(bundle.manifest["files"]) == {WEIGHTS, "spec.yaml", "normalization.json", "classes.json", "metrics.json"}


def test_tampered_weights_are_refused(bundle_dir):
    folder, _ = bundle_dir
    data = bytearray((folder / WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (folder / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match the bundle manifest"):
        load_bundle(folder)


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_offered_as_weights_never_runs(bundle_dir, tmp_path):
    folder, _ = bundle_dir
    marker = tmp_path / "pwned"
    (folder / WEIGHTS).write_bytes(pickle.dumps({"conv.weight": Payload(str(marker))}))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][WEIGHTS] = _sha256(folder / WEIGHTS)  # an attacker can rewrite the manifest too
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not loadable weights"):
        load_bundle(folder)
    assert not marker.exists()
    pickle.loads((folder / WEIGHTS).read_bytes())  # the payload is live: unpickling it would have run it
    assert marker.exists()


def test_missing_files_and_non_bundles(bundle_dir, tmp_path):
    folder, _ = bundle_dir
    (folder / "classes.json").unlink()
    with pytest.raises(BundleError, match="classes.json: missing from the bundle"):
        load_bundle(folder)
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path / "nowhere")
