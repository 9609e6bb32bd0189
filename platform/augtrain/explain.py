"""Explain: Integrated Gradients attribution maps for image and sequence models, and their plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from captum.attr import IntegratedGradients  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from torch import nn  # noqa: E402

# Interpolated inputs per forward/backward pass. Bounds memory, and keeps packed-LSTM backward fast on
# CPU: its per-step slice gradients fill buffers the size of the whole batch (one pass of 384 unequal
# GunPoint series takes about 3x as long as six passes of 64).
CHUNK = 64


def attribute(model: nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int = 64) -> np.ndarray:
    """Integrated Gradients of the `target` logits w.r.t. `x` from a zero baseline, same shape as `x`.

    Zero is the train-split mean after normalization. NaN padding of sequences gets exactly zero
    attribution. Puts `model` in eval mode.
    """
    model.eval()
    padding = torch.isnan(x)
    filled = x.masked_fill(padding, 0.0)

    def padded_logits(inputs: torch.Tensor, padded: torch.Tensor) -> torch.Tensor:
        # Only real steps are interpolated: padding stays NaN so the model still masks it, and its
        # attribution is (0 - 0) * gradient = 0 rather than NaN * 0.
        return model(inputs.masked_fill(padded, float("nan")))

    # cuDNN's RNN backward refuses eval mode; the native kernels compute the same gradients
    with torch.backends.cudnn.flags(enabled=False):
        attributions = IntegratedGradients(padded_logits).attribute(
            filled, baselines=torch.zeros_like(filled), target=target, additional_forward_args=(padding,),
            n_steps=steps, internal_batch_size=max(len(x), CHUNK),
        )
    return attributions.detach().cpu().numpy()


def plot_attributions(samples: np.ndarray, attributions: np.ndarray, titles: list[str], path: str | Path,
                      columns: int = 4) -> None:
    """One PNG of samples beside their attributions: images (N, C, H, W) over a heatmap of |attribution|
    summed over channels; sequences (N, T, C) as lines coloured by signed attribution, padding left out.
    """
    plot = _plot_images if samples.ndim == 4 else _plot_sequences
    figure = plot(samples, attributions, titles, min(columns, len(samples)))
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_images(images: np.ndarray, attributions: np.ndarray, titles: list[str], columns: int) -> plt.Figure:
    rows = -(-len(images) // columns)
    figure, axes = plt.subplots(2 * rows, columns, figsize=(2.2 * columns, 4.2 * rows), squeeze=False,
                                layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for i, (image, attribution, title) in enumerate(zip(images, attributions, titles)):
        top, bottom = axes[2 * (i // columns), i % columns], axes[2 * (i // columns) + 1, i % columns]
        # normalized images are not in [0, 1]: stretch each one to its own range to make it viewable
        shown = (image - image.min()) / max(np.ptp(image), 1e-8)
        top.imshow(shown[0] if len(shown) == 1 else shown.transpose(1, 2, 0), cmap="gray")
        top.set_title(title, fontsize=9)
        bottom.imshow(np.abs(attribution).sum(0), cmap="inferno")
    return figure


def _plot_sequences(series: np.ndarray, attributions: np.ndarray, titles: list[str], columns: int) -> plt.Figure:
    rows = -(-len(series) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False,
                                layout="constrained")
    for ax in axes.flat[len(series):]:
        ax.axis("off")
    for ax, values, attribution, title in zip(axes.flat, series, attributions, titles):
        length = int((~np.isnan(values[:, 0])).sum())
        # one colour scale per sample, symmetric so that white means no attribution
        scale = max(np.abs(attribution).max(), 1e-12)
        for channel in range(values.shape[1]):
            points = np.stack([np.arange(length), values[:length, channel]], 1)
            segments = np.stack([points[:-1], points[1:]], 1)
            colour = (attribution[:length - 1, channel] + attribution[1:length, channel]) / 2
            lines = LineCollection(segments, cmap="RdBu_r", norm=plt.Normalize(-scale, scale), linewidth=3)
            lines.set_array(colour)
            ax.add_collection(lines)
            # a thin grey core keeps the series visible where its attribution (and colour) is near white
            ax.plot(points[:, 0], points[:, 1], color="0.45", linewidth=0.7)
        ax.set_xlim(0, len(values) - 1)  # the full padded length, so shorter series look shorter
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    figure.colorbar(plt.cm.ScalarMappable(plt.Normalize(-1, 1), "RdBu_r"), ax=axes, shrink=0.8,
                    label="attribution / max |attribution|")
    return figure


def explain_samples(model: nn.Module, samples: np.ndarray, classes: list[str], path: str | Path,
                    truth: list[str] | None = None) -> np.ndarray:
    """Attribute normalized `samples` to the class the model predicts for each and plot them; the attributions."""
    x = torch.from_numpy(samples)
    with torch.no_grad():
        probabilities = torch.softmax(model.eval()(x), 1)
    predicted = probabilities.argmax(1)
    attributions = attribute(model, x, predicted)
    titles = [
        (f"true {truth[i]} / " if truth else "") + f"pred {classes[p]} ({probabilities[i, p]:.2f})"
        for i, p in enumerate(predicted.tolist())
    ]
    plot_attributions(samples, attributions, titles, path)
    return attributions
