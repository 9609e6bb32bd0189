"""Evaluate: test-split metrics (accuracy, per-class P/R/F1, confusion matrix) into the run dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)
from torch import nn  # noqa: E402


def predict_logits(model: nn.Module, batches: Iterable[tuple[np.ndarray, np.ndarray]], batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels for (model input, labels) batches, `batch_size` samples per forward pass."""
    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for x, y in batches:
            for start in range(0, len(y), batch_size):
                logits.append(model(torch.from_numpy(x[start : start + batch_size])).numpy())
            labels.append(y)
    return np.concatenate(logits), np.concatenate(labels)


def classification_metrics(labels: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix."""
    index = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=index, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(classes, precision, recall, f1, support)
        },
        "confusion_matrix": confusion_matrix(labels, predicted, labels=index).tolist(),
        "classes": classes,
    }


def plot_confusion(matrix: list[list[int]], classes: list[str], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(1 + 0.5 * len(classes), 1 + 0.5 * len(classes)), dpi=100)
    axes.imshow(matrix, cmap="Blues")
    for (row, col), value in np.ndenumerate(np.asarray(matrix)):
        axes.text(col, row, str(value), ha="center", va="center", fontsize=8)
    axes.set(xticks=range(len(classes)), yticks=range(len(classes)), xlabel="predicted", ylabel="true")
    axes.set_xticklabels(classes, rotation=90)
    axes.set_yticklabels(classes)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_metrics(run_dir: Path, metrics: dict) -> None:
    """metrics.json plus confusion_matrix.json/.png for the test split."""
    test = metrics["test"]
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (run_dir / "confusion_matrix.json").write_text(
        json.dumps({"classes": test["classes"], "matrix": test["confusion_matrix"]})
    )
    plot_confusion(test["confusion_matrix"], test["classes"], run_dir / "confusion_matrix.png")
