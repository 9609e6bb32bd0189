"""Image backbones: torchvision's ResNet, MobileNetV3, EfficientNet and ConvNeXt, untrained, their stems fitted to
the input, and `small_resnet`, a compact residual net for small images. Imports torchvision, so `models.py` imports
this module only when it builds one of these (checking a spec needs only the builders' signatures).

The torchvision models keep torchvision's module names (conv1, fc, features.0.0, classifier.N): its weights load by
name, all but a changed stem conv. Each model's last nn.Linear (in `modules()` order) is its classifier head.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn


def _torchvision_ops() -> torch.library.Library | None:
    """Load torchvision's C++ ops; where they cannot load, declare the two that importing torchvision needs.

    torchvision 0.28 registers fake kernels for torchvision::nms and ::qnms at import without checking that its
    _C.so loaded, and with a CPU torch it does not (the PyPI build is linked against CUDA torch), so the import
    fails with "operator torchvision::nms does not exist". Declaring their schemas lets the models import; the
    detection ops stay unusable, which these backbones never call. With a CUDA torch the real ops load.
    """
    folder = Path(importlib.util.find_spec("torchvision").origin).parent
    try:
        torch.ops.load_library(str(next(folder.glob("_C*.so"))))
        return None
    except OSError:
        library = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        return library


_OPS = _torchvision_ops()  # the declarations live as long as this Library object

from torchvision import models  # noqa: E402  (after the ops above)
from torchvision.models.resnet import BasicBlock  # noqa: E402

SMALL_INPUT = 64  # stem "auto" picks the small stem when the image's smaller side is under this (in pixels)


def _he_init(conv: nn.Conv2d) -> nn.Conv2d:
    """`conv` initialised as torchvision initialises ResNet, MobileNet and EfficientNet convolutions."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def first_conv(conv: nn.Conv2d, channels: int, **changes) -> nn.Conv2d:
    """A stem's first convolution `conv`, rebuilt for `channels` input channels with `changes` to its kernel_size,
    stride or padding; `conv` itself when nothing changes."""
    if channels == conv.in_channels and not changes:
        return conv
    settings = {"kernel_size": conv.kernel_size, "stride": conv.stride, "padding": conv.padding} | changes
    return _he_init(nn.Conv2d(channels, conv.out_channels, bias=conv.bias is not None, **settings))


def _small(shape: tuple[int, int, int], stem: str) -> bool:
    """Whether the model gets the small-input stem: the ImageNet ones shrink a 28x28 image to nothing."""
    return stem == "small" or (stem == "auto" and min(shape[:2]) < SMALL_INPUT)


def resnet(name: str, shape: tuple[int, int, int], classes: int, stem: str, dropout: float) -> nn.Module:
    """torchvision's ResNet `name`; its small stem is a stride-1 3x3 conv without the max pool (overall stride 8).
    The dropout goes after the (parameterless) average pool, which keeps `fc` named as in torchvision."""
    model = getattr(models, name)(weights=None, num_classes=classes)
    small = _small(shape, stem)
    model.conv1 = first_conv(model.conv1, shape[2], **({"kernel_size": 3, "stride": 1, "padding": 1} if small else {}))
    if small:
        model.maxpool = nn.Identity()
    model.avgpool = nn.Sequential(model.avgpool, nn.Dropout(dropout))
    return model


def mobile(name: str, shape: tuple[int, int, int], classes: int, stem: str, dropout: float) -> nn.Module:
    """torchvision's MobileNetV3 or EfficientNet `name` (their own dropout before the head); the small stem's first
    conv has stride 1 (overall stride 16)."""
    model = getattr(models, name)(weights=None, num_classes=classes, dropout=dropout)
    changes = {"stride": 1} if _small(shape, stem) else {}
    model.features[0][0] = first_conv(model.features[0][0], shape[2], **changes)
    return model


def convnext(name: str, shape: tuple[int, int, int], classes: int, stem: str, dropout: float) -> nn.Module:
    """torchvision's ConvNeXt `name`; the small stem patchifies 2x2 rather than 4x4 (overall stride 16). The dropout
    goes after the head's (parameterless) Flatten, which keeps `classifier.2` named as in torchvision."""
    model = getattr(models, name)(weights=None, num_classes=classes)
    changes = {"kernel_size": 2, "stride": 2} if _small(shape, stem) else {}
    model.features[0][0] = first_conv(model.features[0][0], shape[2], **changes)
    model.classifier[1] = nn.Sequential(model.classifier[1], nn.Dropout(dropout))
    return model


def small_resnet(channels: int, classes: int, width: int, dropout: float) -> nn.Sequential:
    """A 3x3 conv stem, then 3 stages of 2 basic residual blocks `width`, 2x and 4x wide, halving the size between
    stages, then global average pooling and one Linear: 14 layers, for images from about 8x8 up."""
    widths = (width, 2 * width, 4 * width)
    layers = [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    inplanes = width
    for planes in widths:
        stride = 1 if planes == inplanes else 2
        downsample = None if stride == 1 else nn.Sequential(
            nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
        )
        layers += [BasicBlock(inplanes, planes, stride, downsample), BasicBlock(planes, planes)]
        inplanes = planes
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(inplanes, classes)]
    model = nn.Sequential(*layers, *head)
    for conv in model.modules():
        if isinstance(conv, nn.Conv2d):
            _he_init(conv)
    return model
