"""Drawing sequences: attribution maps (report thumbnails are plain line plots, see the modality)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402


def plot_attributions(series: np.ndarray, attributions: np.ndarray, titles: list[str], columns: int) -> plt.Figure:
    """Series (N, T, C) as lines coloured by signed attribution, padding left out."""
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
