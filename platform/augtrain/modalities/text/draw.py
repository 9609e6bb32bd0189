"""Texts on matplotlib axes: a sample as wrapped text, and token attributions as tokens highlighted by
their weight (red for the predicted class, blue against it)."""

from __future__ import annotations

import textwrap

import numpy as np

SHOWN_CHARS = 160  # of a text in the report's grids
PER_LINE = 6  # tokens per line of an attribution panel


def show_text(axis, text: str) -> None:
    shown = text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"
    axis.text(0, 1, textwrap.fill(shown, 34), va="top", ha="left", fontsize=6.5, family="monospace",
              transform=axis.transAxes, clip_on=True)


def plot_attributions(tokens: list[list[str]], attributions: list[np.ndarray], titles: list[str], columns: int):
    """A figure of texts (their tokens) highlighted by attribution, one panel per text."""
    import matplotlib.pyplot as plt

    rows = -(-len(tokens) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 1.7 * rows), squeeze=False, layout="constrained")
    for axis in axes.flat:
        axis.set_axis_off()
    for axis, words, weights, title in zip(axes.flat, tokens, attributions, titles):
        axis.set_title(title, fontsize=7)
        scale = float(np.abs(weights).max()) or 1.0
        lines = -(-len(words) // PER_LINE) or 1
        for k, (word, weight) in enumerate(zip(words, weights)):
            strength = float(weight) / scale
            color = (1, 1 - strength, 1 - strength) if strength > 0 else (1 + strength, 1 + strength, 1)
            axis.text((k % PER_LINE + 0.05) / PER_LINE, 1 - (k // PER_LINE + 0.5) / max(lines, 6), word[:10],
                      fontsize=6.5, family="monospace", va="center", transform=axis.transAxes,
                      bbox={"facecolor": color, "edgecolor": "none", "pad": 1.0})
    return figure
