"""Image models: (N, C, H, W) inputs, each sized from the dataset's sample shape (H, W, C).

The builders import torch when they build, and the backbones (torchvision's, and `resnet_small`) come from
`backbones.py` (torchvision): checking a spec's model and its parameters needs only the signatures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Callable, Literal

from pydantic import Field

if TYPE_CHECKING:
    from torch import nn

Width = Annotated[int, Field(ge=1, le=1024)]  # a bound on what a spec (or a bundle from elsewhere) may build
Dropout = Annotated[float, Field(ge=0, lt=1)]
StageWidth = Annotated[int, Field(ge=1, le=256)]  # resnet_small's last stage is 4x as wide
Stem = Literal["auto", "imagenet", "small"]  # "auto": "small" (stride 1, no max pool) below 64 pixels, else "imagenet"

def cnn(shape: tuple[int, int, int], classes: int, width: Width = 32, dropout: Dropout = 0.0) -> nn.Module:
    """The classic small CNN: Conv 32 -> Pool -> Conv 64 -> Pool -> Conv 64 -> Dense 64 -> Dense classes.

    Convolutions pad to keep size so the net fits inputs as small as 8x8; `shape` is (H, W, C).
    """
    from torch import nn

    height, width_px, channels = shape
    features = nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1),
        nn.ReLU(),
    )
    flat = 2 * width * (height // 4) * (width_px // 4)
    return nn.Sequential(
        features,
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(flat, 64),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(64, classes),
    )


def resnet_small(
    shape: tuple[int, int, int], classes: int, width: StageWidth = 32, dropout: Dropout = 0.0
) -> nn.Module:
    """A compact residual net trained from scratch on small images: a 3x3 conv stem, 3 stages of 2 basic blocks
    (`width`, 2x, 4x channels, halving the size between stages), global average pooling, one Linear."""
    from augtrain.modalities.image.backbones import small_resnet

    return small_resnet(shape[2], classes, width, dropout)


def _torchvision(name: str, family: str, default_dropout: float = 0.0) -> Callable[..., nn.Module]:
    """The builder of torchvision's model `name`, whose stem `family` (a function in backbones.py) fits."""

    def build(
        shape: tuple[int, int, int], classes: int, stem: Stem = "auto", dropout: Dropout = default_dropout
    ) -> nn.Module:
        from augtrain.modalities.image import backbones

        return getattr(backbones, family)(name, shape, classes, stem, dropout)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"torchvision's {name}, untrained (nothing is downloaded), its stem fitted to the input."
    return build


MODELS = {
    "cnn": cnn,
    "resnet_small": resnet_small,
    "resnet18": _torchvision("resnet18", "resnet"),
    "resnet34": _torchvision("resnet34", "resnet"),
    "resnet50": _torchvision("resnet50", "resnet"),
    "mobilenet_v3_small": _torchvision("mobilenet_v3_small", "mobile", 0.2),
    "mobilenet_v3_large": _torchvision("mobilenet_v3_large", "mobile", 0.2),
    "efficientnet_b0": _torchvision("efficientnet_b0", "mobile", 0.2),
    "convnext_tiny": _torchvision("convnext_tiny", "convnext"),
}
"""Builders by name. The torchvision ones keep torchvision's module names and default dropout (0.2 for MobileNetV3
and EfficientNet, none in ResNet and ConvNeXt); each model's last nn.Linear is its classifier head."""
