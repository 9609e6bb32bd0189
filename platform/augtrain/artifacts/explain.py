"""Explain: Integrated Gradients attribution maps of a model's inputs, plotted by their modality."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from captum.attr import IntegratedGradients  # noqa: E402
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


def plot_attributions(modality, samples: np.ndarray, attributions: np.ndarray, titles: list[str],
                      path: str | Path, stats: dict, columns: int = 4) -> None:
    """One PNG of model inputs beside their attributions, drawn the modality's way."""
    figure = modality.plot_attributions(samples, attributions, titles, min(columns, len(samples)), stats)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def explain_samples(modality, model: nn.Module, samples: np.ndarray, classes: list[str], path: str | Path,
                    stats: dict, truth: list[str] | None = None) -> np.ndarray:
    """Attribute model inputs `samples` to the class the model predicts for each and plot them (`stats`: the
    run's normalization.json); the attributions."""
    x = torch.from_numpy(samples)
    with torch.no_grad():
        probabilities = torch.softmax(model.eval()(x), 1)
    predicted = probabilities.argmax(1)
    attributions = modality.attribute(model, x, predicted)
    titles = [
        (f"true {truth[i]} / " if truth else "") + f"pred {classes[p]} ({probabilities[i, p]:.2f})"
        for i, p in enumerate(predicted.tolist())
    ]
    plot_attributions(modality, samples, attributions, titles, path, stats)
    return attributions
