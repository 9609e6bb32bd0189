"""Drawing recordings: report thumbnails (waveform over its spectrogram) and attribution maps."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def show_recording(axis, wave: np.ndarray, spectrogram: np.ndarray) -> None:
    """A (length,) waveform in the top quarter of the axis, its (bins, frames) spectrogram below (low
    frequencies at the bottom), on one time axis."""
    axis.imshow(spectrogram, origin="lower", aspect="auto", cmap="magma", extent=(0, 1, 0, 0.72))
    peak = max(float(np.abs(wave).max()), 1e-8)
    axis.plot(np.linspace(0, 1, len(wave)), 0.86 + 0.13 * wave / peak, color="#333333", linewidth=0.3)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)


def plot_attributions(spectrograms: np.ndarray, attributions: np.ndarray, titles: list[str], columns: int) -> plt.Figure:
    """Model inputs (N, bins, frames) in grey under their signed attributions (red: towards the prediction)."""
    rows = -(-len(spectrograms) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 2.2 * rows), squeeze=False,
                                layout="constrained")
    for ax in axes.flat[len(spectrograms):]:
        ax.axis("off")
    for ax, spectrogram, attribution, title in zip(axes.flat, spectrograms, attributions, titles):
        scale = max(float(np.abs(attribution).max()), 1e-12)  # symmetric: white means no attribution
        ax.imshow(spectrogram, origin="lower", aspect="auto", cmap="gray")
        ax.imshow(attribution, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-scale, vmax=scale, alpha=0.6)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("frame", fontsize=7)
        ax.set_ylabel("band", fontsize=7)
        ax.tick_params(labelsize=6)
    figure.colorbar(plt.cm.ScalarMappable(plt.Normalize(-1, 1), "RdBu_r"), ax=axes, shrink=0.8,
                    label="attribution / max |attribution|")
    return figure
