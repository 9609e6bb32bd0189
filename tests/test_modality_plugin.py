"""A modality defined outside the package: fixed-length vectors with an MLP, registered here and nowhere
else, is collected, trained for an epoch, predicted and reported like the built-in ones."""

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import ray.cloudpickle as cloudpickle
from augtrain.artifacts.report import write_report
from augtrain.cli import app
from augtrain.datasets.sources import Loaded, npz_arrays
from augtrain.modalities import MODALITIES, register
from augtrain.modalities.base import Modality
from torch import nn
from typer.testing import CliRunner


def mlp(shape: tuple[int], classes: int, hidden: int = 32) -> nn.Module:
    return nn.Sequential(nn.Linear(shape[0], hidden), nn.ReLU(), nn.Linear(hidden, classes))


class VectorModality(Modality):
    """(D,) float32 vectors from an .npz (x: (N, D), y: (N,)), standardized per feature."""

    kind = "vector"
    model_names = ("mlp",)
    transforms_hint = "none"

    def claims(self, data) -> bool:
        return data.kind == self.kind and data.source.endswith(".npz")

    def load(self, data, labelled=True):
        arrays = npz_arrays(Path(data.source), [["x", "y"]])
        out = Loaded()
        for i, (x, y) in enumerate(zip(arrays["x"].astype(np.float32), arrays["y"])):
            out.add(f"row {i}", x, y)
        return out

    def augmenter(self, transforms, seed=None):
        return lambda batch: batch

    def models(self):
        return {"mlp": mlp}

    def draw(self, axis, sample, before=None):
        axis.bar(range(len(sample)), sample)

    def report_pair(self, samples, stats, transforms, seed):
        return samples, None, None

    def plot_attributions(self, samples, attributions, titles, columns, stats):
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(1, len(samples), squeeze=False)
        for axis, attribution, title in zip(axes[0], attributions, titles):
            axis.bar(range(len(attribution)), attribution)
            axis.set_title(title, fontsize=8)
        return figure


VECTOR = MODALITIES.get("vector") or register(VectorModality())
# Ray's processes get the modality as an object (never look it up by kind): Ray's pickler ships this
# module's definitions by value, since the workers cannot import a test module
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_a_registered_modality_collects_trains_predicts_and_reports(ray_session, tmp_path, digits):
    np.savez(tmp_path / "vectors.npz", x=digits.data, y=digits.target)
    job = tmp_path / "vectors.yaml"
    job.write_text(
        "data: {source: " + str(tmp_path / "vectors.npz") + ", kind: vector, path: " + str(tmp_path / "data") + "}\n"
        "model: {name: mlp, params: {hidden: 16}}\n"
        "train: {epochs: 1, lr: 0.01, batch_size: 64}\n"
        "run: {name: vectors, storage_path: " + str(tmp_path / "runs") + "}\n"
    )
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(job)])
    assert result.exit_code == 0, result.output
    run_dir = Path(next(line[9:] for line in result.output.splitlines() if line.startswith("run dir: ")))
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["kind"] == "vector" and manifest["shape"] == [64]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.5  # one epoch of an MLP on standardized digits pixels

    np.savez(tmp_path / "new.npz", x=digits.data[:50], y=digits.target[:50])
    predicted = runner.invoke(app, ["predict", str(run_dir), str(tmp_path / "new.npz"), "--out", str(tmp_path / "p.parquet")])
    assert predicted.exit_code == 0, predicted.output
    rows = pq.read_table(tmp_path / "p.parquet").to_pylist()
    assert len(rows) == 50 and {f"p_{c}" for c in range(10)} <= set(rows[0])
    assert sum(r["predicted"] == r["label"] for r in rows) > 25

    html = write_report(run_dir).read_text()
    assert html.count("data:image/png;base64") >= 2  # the data card's samples, drawn by the modality, and more
    assert (run_dir / "explain" / "test_samples.png").stat().st_size > 0  # attributions, plotted by it too
