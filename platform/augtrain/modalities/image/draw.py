"""Drawing images: report thumbnails and attribution maps."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def stretch(image: np.ndarray) -> np.ndarray:
    """A float image stretched to [0, 1] over its own range: normalized images are not in [0, 1]."""
    return (image - image.min()) / max(float(np.ptp(image)), 1e-8)


def show_image(axis, image: np.ndarray) -> None:
    """An (H, W, C) image: uint8 on its full 0..255 scale, float stretched to its own range."""
    if image.dtype != np.uint8:
        image = stretch(image)
    scale = {"vmin": 0, "vmax": 255 if image.dtype == np.uint8 else 1}
    if image.shape[-1] == 1:
        axis.imshow(image[..., 0], cmap="gray_r", interpolation="nearest", **scale)
    else:
        axis.imshow(image, interpolation="nearest")


def plot_attributions(images: np.ndarray, attributions: np.ndarray, titles: list[str], columns: int) -> plt.Figure:
    """Model inputs (N, C, H, W) over a heatmap of |attribution| summed over channels."""
    rows = -(-len(images) // columns)
    figure, axes = plt.subplots(2 * rows, columns, figsize=(2.2 * columns, 4.2 * rows), squeeze=False,
                                layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for i, (image, attribution, title) in enumerate(zip(images, attributions, titles)):
        top, bottom = axes[2 * (i // columns), i % columns], axes[2 * (i // columns) + 1, i % columns]
        shown = stretch(image)
        top.imshow(shown[0] if len(shown) == 1 else shown.transpose(1, 2, 0), cmap="gray")
        top.set_title(title, fontsize=9)
        bottom.imshow(np.abs(attribution).sum(0), cmap="inferno")
    return figure
