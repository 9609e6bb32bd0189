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


def plot_lengths(counts: list[int], max_length: int):
    """A histogram of the training texts' lengths in tokens, max_length marked with the share it cuts."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 2.4), layout="constrained")
    axis.hist(counts, bins=min(50, max(counts) or 1), color="#4c72b0")
    cut = float(np.mean(np.array(counts) > max_length))
    axis.axvline(max_length, color="#c44e52", linestyle="--", linewidth=1)
    axis.set(xlabel="tokens per training text", ylabel="texts",
             title=f"max_length {max_length} cuts {100 * cut:.1f} % of {len(counts):,} texts")
    axis.title.set_fontsize(9)
    return figure
