"""Report: RUN_DIR/report.html, one self-contained page (plots embedded) from what the run dir holds."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from jinja2 import Environment, PackageLoader  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from augtrain.config.spec import flatten, read_yaml  # noqa: E402
from augtrain.datasets.format import (  # noqa: E402
    SPLITS,
    dataset_version,
    decode_samples,
    read_manifest,
    split_files,
)
from augtrain.datasets.sources import SourceError  # noqa: E402
from augtrain.datasets.storage import open_input  # noqa: E402
from augtrain.evaluation.metrics import plot_confusion  # noqa: E402
from augtrain.modalities import Modality, for_manifest  # noqa: E402

SAMPLES_PER_CLASS = 4
TITLE_INCHES = 0.3  # above the sample grids, for the class names
NUMERIC = re.compile(r"-?\d+(\.\d*)?([eE][-+]?\d+)?")
CLASSES_SHOWN = 10  # sample grids beyond this many classes grow past a readable page
ARTIFACTS = {
    "model": "model bundle (weights, spec, normalization, classes)",
    "train": "training checkpoints",
    "trials": "per-trial checkpoints",
    "folds": "per-fold checkpoints",
    "tune": "Ray Tune experiment (for --resume)",
    "metrics.json": "test metrics, history, dataset",
    "spec.yaml": "resolved job spec",
    "normalization.json": "normalization stats",
    "confusion_matrix.json": "test confusion matrix",
    "confusion_matrix.png": "test confusion matrix plot",
    "trials.csv": "one row per trial",
    "tune_metric.png": "sweep metric per field",
    "learning_curves.png": "every trial's learning curve",
    "evaluations": "re-evaluations (augtrain evaluate)",
    "explain": "attribution maps",
}


def write_report(run_dir: Path, card: dict | None = None) -> Path:
    """Write RUN_DIR/report.html from the run dir (and the dataset it points to); return its path. `card`: the
    data card drawn already (`data_card` of this run's dataset, augmentation, seed and normalization)."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    spec_text = (run_dir / "spec.yaml").read_text()
    spec = read_yaml(spec_text, str(run_dir / "spec.yaml"))
    test, history = metrics["test"], metrics.get("history")
    page = {
        "run_dir": run_dir,
        "spec": spec,
        "spec_text": spec_text,
        "spec_sections": [(name, flatten(value)) for name, value in spec.items() if value not in (None, [], {})],
        "metrics": metrics,
        "test": test,
        "confusion": confusion(run_dir, test),
        "curves": data_uri(plot_curves, history, metrics.get("best_epoch")) if history else None,
        "data": card or data_card(metrics["dataset"], spec["augment"], spec["data"]["seed"],
                                  json.loads((run_dir / "normalization.json").read_text())),
        "tuning": tuning(run_dir, metrics),
        "attributions": [(png.stem, png_uri(png)) for png in sorted((run_dir / "explain").glob("*.png"))],
        "files": artifacts(run_dir),
        "generated": time.strftime("%Y-%m-%d %H:%M"),
    }
    env = Environment(loader=PackageLoader("augtrain.artifacts"), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["cell"] = cell
    out = run_dir / "report.html"
    out.write_text(env.get_template("report.html.j2").render(page))
    return out


def cell(value, digits: int = 4) -> str:
    """A table cell: floats (numeric text too, as read from a CSV) to `digits` significant digits."""
    if isinstance(value, str) and NUMERIC.fullmatch(value):
        value = float(value) if set(value) & set(".eE") else int(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)  # as the YAML spells them
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def confusion(run_dir: Path, test: dict) -> str:
    """The test confusion matrix: the plot `write_metrics` saved beside metrics.json (drawing it again cost a run's
    end a quarter of a second), drawn afresh only for a run dir without it."""
    saved = run_dir / "confusion_matrix.png"
    if saved.is_file():
        return png_uri(saved)
    return data_uri(plot_confusion, test["confusion_matrix"], test["classes"])


def data_uri(plot, *args) -> str:
    """Run `plot(*args, file)`, a function that saves one PNG figure, and return it as a data URI."""
    buffer = io.BytesIO()
    plot(*args, buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def save(figure, out) -> None:
    figure.savefig(out, format="png", dpi=100)
    plt.close(figure)


def plot_curves(history: list[dict], best_epoch: int | None, out) -> None:
    """Loss, accuracy and learning rate per epoch; the selected epoch dashed."""
    epochs = [h["epoch"] for h in history]
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.2), layout="constrained")
    for axis, name in zip(axes, ("loss", "accuracy")):
        axis.plot(epochs, [h[f"train_{name}"] for h in history], label="train", color="#4c72b0")
        axis.plot(epochs, [h[f"val_{name}"] for h in history], label="val", color="#dd8452")
        axis.set(title=name, xlabel="epoch")
    axes[2].plot(epochs, [h["lr"] for h in history], color="#55a868")
    axes[2].set(title="learning rate", xlabel="epoch")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        if best_epoch is not None:
            axis.axvline(best_epoch, color="#c44e52", linestyle="--", linewidth=1, label="selected")
    axes[1].legend(frameon=False)
    save(figure, out)


def data_card(dataset: dict, augment: list[dict], seed: int, stats: dict) -> dict:
    """Class counts per split, the modality's profile of the data (text: lengths) and sample grids (raw, and
    augmented as `augment` with `seed` does in training) of `dataset` (a run's: its path and hash, see
    `dataset_version`); `missing` says why when the dataset is gone."""
    try:
        dataset = dataset_version(dataset["path"], dataset.get("hash"))
        manifest = read_manifest(dataset)
    except SourceError as exc:
        return {"missing": str(exc)}
    classes = manifest["classes"]
    counts = [[manifest["counts"][split].get(name, 0) for split in SPLITS] for name in classes]
    most = [max(column) or 1 for column in zip(*counts)]
    samples, labels = first_samples(dataset, manifest)
    drawn = for_manifest(manifest)
    samples, augmented, before = drawn.report_pair(samples, stats, augment, seed)
    profile = drawn.profile(dataset, manifest, stats)
    return {
        "manifest": manifest,
        "splits": SPLITS,
        "rows": [(name, [(n, 100 * n / m) for n, m in zip(row, most)]) for name, row in zip(classes, counts)],
        "totals": [sum(column) for column in zip(*counts)],
        "shown": len(set(labels.tolist())),
        "profile": data_uri(save, profile) if profile else None,
        "raw": data_uri(plot_samples, drawn, samples, labels, classes, None),
        "augmented": data_uri(plot_samples, drawn, augmented, labels, classes, before) if augmented is not None else None,
    }


def first_samples(dataset: str, manifest: dict) -> tuple[np.ndarray, np.ndarray]:
    """Up to SAMPLES_PER_CLASS train samples of each of the first CLASSES_SHOWN classes, ordered by class."""
    wanted = {y: SAMPLES_PER_CLASS for y in range(min(len(manifest["classes"]), CLASSES_SHOWN))}
    picked = []
    shards = (pq.ParquetFile(open_input(shard)) for shard in split_files(dataset, "train"))
    for batch in (batch for shard in shards for batch in shard.iter_batches(256, columns=["x", "y"])):
        for x, y in zip(batch.column("x").to_pylist(), batch.column("y").to_pylist()):
            if wanted.get(y):
                wanted[y] -= 1
                picked.append((y, x))
        if not any(wanted.values()):
            break
    picked.sort(key=lambda pair: pair[0])
    return decode_samples([x for _, x in picked], manifest), np.array([y for y, _ in picked], dtype=np.int64)


def plot_samples(drawn: Modality, samples: np.ndarray, labels: np.ndarray, classes: list[str],
                 before: np.ndarray | None, out) -> None:
    """One column per class, each sample drawn by its modality (with `before` faint behind, to show the change)."""
    columns = list(dict.fromkeys(labels.tolist()))
    width, height = drawn.thumbnail
    total = height * SAMPLES_PER_CLASS + TITLE_INCHES
    # a fixed grid with room for the titles on top: the axes are bare, so a layout engine has nothing to
    # arrange (constrained layout measured every axis's extent: about 0.15 s of a 1.9 s report)
    figure, axes = plt.subplots(
        SAMPLES_PER_CLASS, len(columns), figsize=(width * len(columns), total), squeeze=False,
        gridspec_kw={"left": 0.01, "right": 0.99, "bottom": 0.01, "top": 1 - TITLE_INCHES / total,
                     "wspace": 0.06, "hspace": 0.06},
    )
    for axis in axes.flat:
        axis.set_axis_off()
    for column, y in enumerate(columns):
        axes[0, column].set_title(classes[y], fontsize=9)
        for axis, i in zip(axes[:, column], np.flatnonzero(labels == y)):
            drawn.draw(axis, samples[i], None if before is None else before[i])
    save(figure, out)


def tuning(run_dir: Path, metrics: dict) -> dict | None:
    """The sweep's trials sorted by its metric (best first) and its plots; None for a single run."""
    if not (run_dir / "trials.csv").is_file():
        return None
    with (run_dir / "trials.csv").open(newline="") as file:
        trials = list(csv.DictReader(file))
    metric, mode = metrics["tune"]["metric"], metrics["tune"]["mode"]
    sign = -1 if mode == "max" else 1
    # unscored trials (an empty cell) go last
    trials.sort(key=lambda t: (t[metric] == "", sign * float(t[metric] or 0)))
    plots = [png_uri(run_dir / name) for name in ("tune_metric.png", "learning_curves.png")
             if (run_dir / name).is_file()]
    columns = [c for c in trials[0] if c != "checkpoint"]  # a path into the run dir: long, and in Files
    return {"metric": metric, "mode": mode, "trials": trials, "columns": columns,
            "best": metrics.get("best_trial"), "plots": plots}


def artifacts(run_dir: Path) -> list[tuple[str, str, str]]:
    """(name, size, what it is) for each top-level entry of the run dir."""
    rows = []
    for entry in sorted(p for p in run_dir.iterdir() if p.name != "report.html"):
        files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        size = sum(f.stat().st_size for f in files)
        name = entry.name + ("/" if entry.is_dir() else "")
        rows.append((name, human_size(size), ARTIFACTS.get(entry.name, "")))
    return rows


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
