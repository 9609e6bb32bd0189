"""Exports reproduce trained models' logits on real held-out data, at any batch size and padding."""

import re

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from augtrain.artifacts.bundle import export_bundle, load_bundle
from augtrain.artifacts.export import FORMATS, TOLERANCE, ExportError, export_model
from augtrain.config.spec import Data, parse_job
from augtrain.datasets.normalize import SERIES, normalize, to_unit
from augtrain.modalities import build_model, read_source
from safetensors.torch import save_file
from sklearn.model_selection import train_test_split
from torch import nn

pytestmark = pytest.mark.usefixtures("one_thread")


def fit(model: nn.Module, x: np.ndarray, y: np.ndarray, steps: int, batch: int = 64) -> nn.Module:
    """A plain training loop, so what gets exported is trained weights, not the initial draw."""
    torch.manual_seed(0)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        pick = torch.randint(len(x), (batch,))
        loss = nn.functional.cross_entropy(model(x[pick]), y[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def bundle_of(run_dir, model, name, params, source, shape, classes, stats):
    """`model` written and loaded back as a run's bundle, the way `augtrain export` finds it."""
    run_dir.mkdir()
    save_file(model.state_dict(), str(run_dir / "weights.safetensors"))
    job = parse_job({"data": {"source": source}, "model": {"name": name, "params": params}})
    dataset = {"classes": classes, "hash": "ab" * 32, "shape": list(shape), "dtype": "float32"}
    export_bundle(run_dir, job, dataset, stats, run_dir / "weights.safetensors", {"test": {}})
    return load_bundle(run_dir)


def run_file(fmt, path, x):
    """Logits of an exported file, loaded the way its user would."""
    if fmt == "torchscript":
        with torch.no_grad():
            return torch.jit.load(str(path))(torch.from_numpy(x)).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def logits_of(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def digits_cnn(tmp_path_factory):
    """The CNN trained on sklearn digits, as a bundle, with its 360 normalized held-out images."""
    listing = read_source(Data(source="sklearn-digits"))[1]
    images = np.stack([sample for _, _, sample, _ in listing.decode()])
    labels = np.array(listing.labels, dtype=np.int64)
    train, test, y_train, y_test = train_test_split(images, labels, test_size=360, stratify=labels, random_state=0)
    unit = to_unit(train)
    stats = {"mean": unit.mean((0, 1, 2)).tolist(), "std": unit.std((0, 1, 2)).tolist()}
    model = fit(build_model("cnn", {}, (8, 8, 1), 10), normalize(train, stats), y_train, steps=300)
    bundle = bundle_of(tmp_path_factory.mktemp("digits") / "run", model, "cnn", {}, "sklearn-digits", (8, 8, 1),
                       [str(i) for i in range(10)], stats)
    return bundle, normalize(test, stats), y_test


@pytest.fixture(scope="module")
def gunpoint():
    """GunPoint's series (N, 150, 1) with labels 0/1 and its own train/test split."""
    listing = read_source(Data(source="ucr:GunPoint"))[1]
    classes = sorted(set(listing.labels))
    series = np.stack([sample for _, _, sample, _ in listing.decode()])
    labels = np.array([classes.index(label) for label in listing.labels], dtype=np.int64)
    test = np.array(listing.given) == "test"
    return series[~test], labels[~test], series[test], classes


def cut(series: np.ndarray, lengths: list[int]) -> np.ndarray:
    """Series cut to the given lengths in turn, the rest NaN padding as for unequal-length sources."""
    out = series.copy()
    for i in range(len(out)):
        out[i, lengths[i % len(lengths)]:] = np.nan
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_digits_cnn_export_matches_on_the_held_out_split(digits_cnn, fmt, tmp_path):
    bundle, x_test, y_test = digits_cnn
    out = tmp_path / f"digits.{fmt}"
    diff = export_model(bundle, fmt, x_test, out)
    expected = logits_of(bundle.model, x_test)
    assert (expected.argmax(1) == y_test).mean() > 0.9  # trained weights, not the initial draw
    measured = np.abs(run_file(fmt, out, x_test) - expected).max()
    assert measured <= TOLERANCE and diff == pytest.approx(measured, abs=1e-7)
    for n in (1, 7):  # batch sizes it was neither built nor checked with
        np.testing.assert_allclose(run_file(fmt, out, x_test[:n]), expected[:n], atol=TOLERANCE, rtol=0)
    if fmt == "onnx":  # and the file says so
        dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 8, 8]


@pytest.fixture(scope="module", params=["fcn", "lstm", "lstm_fcn"])
def gunpoint_model(request, gunpoint, tmp_path_factory):
    """A sequence model trained briefly on GunPoint, as a bundle."""
    train, y_train, _, classes = gunpoint
    name = request.param
    model = fit(build_model(name, {}, train.shape[1:], len(classes)), normalize(train, SERIES), y_train, steps=15,
                batch=25)
    run_dir = tmp_path_factory.mktemp(name) / "run"
    return bundle_of(run_dir, model, name, {}, "ucr:GunPoint", train.shape[1:], classes, SERIES)


@pytest.mark.parametrize("fmt", FORMATS)
def test_sequence_export_matches_on_unequal_lengths(gunpoint, gunpoint_model, fmt, tmp_path):
    _, _, test, _ = gunpoint
    full = normalize(test, SERIES)
    # the export is built from the first and last series (150 and 33 steps); the others check that
    # lengths are read from the padding at run time, not baked in
    x = normalize(cut(test, [150, 120, 97, 64, 150, 33]), SERIES)
    out = tmp_path / f"{gunpoint_model.job.model.name}.{fmt}"
    diff = export_model(gunpoint_model, fmt, x, out)
    expected = logits_of(gunpoint_model.model, x)
    assert np.abs(expected - logits_of(gunpoint_model.model, full)).max() > 1e-3  # the cuts change the logits
    measured = np.abs(run_file(fmt, out, x) - expected).max()
    assert measured <= TOLERANCE and diff == pytest.approx(measured, abs=1e-7)
    np.testing.assert_allclose(run_file(fmt, out, x[2:5]), expected[2:5], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.filterwarnings("ignore:Exporting a model while it is in training mode")
def test_a_mismatch_is_refused_and_nothing_written(digits_cnn, fmt, tmp_path):
    trained, x_test, _ = digits_cnn
    # the trained weights in a CNN with dropout, left in training mode: its logits change with every
    # call, so no export can reproduce them
    bundle = bundle_of(tmp_path / "run", trained.model, "cnn", {"dropout": 0.5}, "sklearn-digits", (8, 8, 1),
                       trained.classes, trained.stats)
    bundle.model.train()
    out = tmp_path / f"digits.{fmt}"
    with pytest.raises(ExportError, match=rf"^{fmt} export of 'cnn' differs from the PyTorch model by ") as err:
        export_model(bundle, fmt, x_test, out)
    assert float(re.search(r" by (\S+) ", str(err.value)).group(1)) > TOLERANCE
    assert not out.exists()


def test_bidirectional_rnn_goes_to_torchscript_but_not_onnx(gunpoint, tmp_path):
    train, _, test, classes = gunpoint
    params = {"bidirectional": True, "hidden": 16}
    model = build_model("lstm", params, train.shape[1:], len(classes))
    bundle = bundle_of(tmp_path / "run", model, "lstm", params, "ucr:GunPoint", train.shape[1:], classes, SERIES)
    x = normalize(cut(test[:20], [150, 90, 41]), SERIES)
    with pytest.raises(ExportError, match="onnx export of 'lstm' with bidirectional=True is not supported"):
        export_model(bundle, "onnx", x, tmp_path / "lstm.onnx")
    assert not (tmp_path / "lstm.onnx").exists()
    assert export_model(bundle, "torchscript", x, tmp_path / "lstm.pt") <= TOLERANCE
    assert (tmp_path / "lstm.pt").is_file()


def test_unknown_format(digits_cnn, tmp_path):
    bundle, x_test, _ = digits_cnn
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        export_model(bundle, "tflite", x_test, tmp_path / "digits.tflite")


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_command_checks_the_run_on_its_whole_test_split(finished_run, finished_sequence_run, fmt):
    from augtrain.cli import app
    from typer.testing import CliRunner

    for run, tests in ((finished_run, 360), (finished_sequence_run, 150)):
        result = CliRunner().invoke(app, ["export", str(run), "--format", fmt])
        assert result.exit_code == 0, result.output
        figure = re.search(rf"on {tests} test inputs: (\S+) \(tolerance 0.0001\)", result.output)
        assert figure and float(figure.group(1)) <= TOLERANCE
        assert (run / "export" / ("model.onnx" if fmt == "onnx" else "model.torchscript.pt")).stat().st_size > 0
