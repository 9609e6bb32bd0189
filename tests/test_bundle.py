"""Bundles load only what their manifest vouches for (and, with a key, what its signature covers),
and never unpickle."""

import json
import pickle
import re

import pytest
import torch
from augtrain.artifacts.bundle import (
    FILES,
    BundleError,
    _sha256,
    export_bundle,
    load_bundle,
)
from augtrain.artifacts.signing import SignatureError
from augtrain.cli import app
from augtrain.config.spec import parse_job
from augtrain.modalities import build_model
from augtrain.training.checkpoint import WEIGHTS
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from safetensors.torch import save_file
from typer.testing import CliRunner

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
    assert json.loads((folder / "input.json").read_text())["dataset_hash"] == DATASET["hash"]
    assert bundle.job.model.name == "cnn" and bundle.shape == [8, 8, 1]
    assert set(json.loads((folder / "manifest.json").read_text())["files"]) == set(FILES)


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


def rewrite(folder, name, text, manifest_edit=None):
    """An attacker's edit: change a file and rewrite its hash in the manifest."""
    (folder / name).write_text(text)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = _sha256(folder / name)
    if manifest_edit:
        manifest_edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "unlist", [WEIGHTS, "classes.json", "normalization.json", "spec.yaml", "input.json"],
)
def test_a_file_dropped_from_the_manifest_is_refused_not_trusted(bundle_dir, unlist):
    folder, _ = bundle_dir
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["files"][unlist]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "classes.json").write_text(json.dumps(list("abcdefghij")))  # swapped classes, unhashed
    with pytest.raises(BundleError, match=rf"must list exactly .*missing \['{unlist}'\]"):
        load_bundle(folder)


def test_an_empty_file_list_or_a_malformed_manifest_is_one_error(bundle_dir):
    folder, _ = bundle_dir
    for text, problem in [
        (json.dumps({"format": 2, "files": {}}), "must list exactly"),
        ("{not json", "not a bundle manifest: Expecting property name"),
        (json.dumps({"format": 2}), "not a bundle manifest of format 2"),
        (json.dumps([1, 2]), "not a bundle manifest of format 2"),
        (json.dumps({"format": 2, "files": {name: "x" for name in FILES}}), "not a SHA-256 hex digest"),
    ]:
        (folder / "manifest.json").write_text(text)
        with pytest.raises(BundleError, match=problem):
            load_bundle(folder)


def test_an_inflated_shape_is_refused_before_anything_is_allocated(bundle_dir):
    folder, _ = bundle_dir
    # a 1e5 x 1e5 RGB "sample": the seed CNN's dense layer alone would be ~10 TB of float32
    rewrite(folder, "input.json", json.dumps({"shape": [100_000, 100_000, 3], "dtype": "uint8", "dataset_hash": "x"}))
    with pytest.raises(BundleError, match="shape must be 1 to 3 positive whole numbers"):
        load_bundle(folder)
    # within the bound, but not what the weights were trained for
    rewrite(folder, "input.json", json.dumps({"shape": [16_000, 16_000, 1], "dtype": "uint8", "dataset_hash": "x"}))
    with pytest.raises(BundleError, match=r"weights do not fit the model the spec describes \(1 tensor\(s\) differ: 3.weight"):
        load_bundle(folder)


def test_rewritten_classes_with_their_hash_load_but_a_signature_catches_them(bundle_dir, tmp_path):
    """Hashes alone cannot catch an attacker who rewrites the manifest too; a signature can."""
    folder, _ = bundle_dir
    private, public = key_pair(tmp_path / "team")
    _, other = key_pair(tmp_path / "other")
    with pytest.raises(SignatureError, match="not signed"):
        load_bundle(folder, public)
    signed = CliRunner().invoke(app, ["sign", str(folder.parent), "--key", str(private)])
    assert signed.exit_code == 0, signed.output
    assert load_bundle(folder, public).classes == DATASET["classes"]
    with pytest.raises(SignatureError, match="Key mismatch"):
        load_bundle(folder, other)

    rewrite(folder, "classes.json", json.dumps(list("abcdefghij")))
    assert load_bundle(folder).classes == list("abcdefghij")  # consistent hashes: only a key can tell
    refused = CliRunner().invoke(app, ["evaluate", str(folder)], env={"AUGTRAIN_PUBLIC_KEY": str(public)})
    assert refused.exit_code == 2
    assert refused.output.startswith("error: ") and "signature check failed" in refused.output
    assert "Hash mismatch for 'classes.json'" in refused.output


def test_a_relative_public_key_is_resolved_where_the_command_runs(bundle_dir, tmp_path, monkeypatch):
    """Ray actors and Serve replicas loading the bundle run in other working directories."""
    folder, _ = bundle_dir
    monkeypatch.chdir(tmp_path)
    refused = CliRunner().invoke(app, ["evaluate", str(folder), "--public-key", "team.pub"])
    assert refused.exit_code == 2 and f"{tmp_path.resolve() / 'team.pub'}: no such public key file" in refused.output


def key_pair(stem):
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = stem.with_suffix(".pem"), stem.with_suffix(".pub")
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.mark.parametrize(
    "name, text, problem",
    [
        ("classes.json", "[" * 100_000 + "]" * 100_000, "classes.json: not valid JSON"),
        ("classes.json", json.dumps(["a"] * 10), "classes must be distinct names"),
        ("input.json", json.dumps({"shape": [64], "dtype": "uint8"}), "model 'cnn' cannot be built for samples of shape [64]"),
        ("normalization.json", json.dumps({}), "normalization.json: expected a mean and std per channel (1)"),
        ("normalization.json", json.dumps({"mean": [0, 0, 0], "std": [1, 1, 1]}), "expected a mean and std per channel (1)"),
        # Python's json reads NaN; a NaN mean would make every prediction NaN (and every served reply a 500)
        ("normalization.json", '{"mean": [NaN], "std": [1]}', "normalization.json: not valid JSON: NaN is not a JSON number"),
    ],
    ids=["deep-json", "duplicate-classes", "shape-unfit", "no-stats", "stats-per-3-channels", "nan-stats"],
)
def test_every_value_of_a_bundle_is_checked_before_use(bundle_dir, name, text, problem):
    folder, _ = bundle_dir
    rewrite(folder, name, text)
    with pytest.raises(BundleError, match=re.escape(problem)):
        load_bundle(folder)
