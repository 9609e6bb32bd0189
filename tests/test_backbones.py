"""Image backbones (torchvision's, built offline, and resnet_small): each builds and trains a step on small
inputs of 1 and 3 channels, keeps small images from vanishing, keeps torchvision's names (its weights load),
and refuses bad parameters."""

import pytest
import torch
from augtrain.modalities import build_model, check_model
from augtrain.modalities.image import IMAGE
from augtrain.modalities.image.models import MODELS

BACKBONES = sorted(set(MODELS) - {"cnn"})
TORCHVISION = sorted(set(BACKBONES) - {"resnet_small"})

pytestmark = pytest.mark.usefixtures("one_thread")


def test_model_names_list_every_builder():
    assert set(IMAGE.model_names) == set(MODELS)


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_trains_a_step(name, shape):
    torch.manual_seed(0)
    model = build_model(name, {}, shape, 5).train()
    stem = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert stem.in_channels == shape[2] and head.out_features == 5
    before = stem.weight.detach().clone(), head.weight.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    logits = model(torch.randn(3, shape[2], shape[0], shape[1]))
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 4]))
    loss.backward()
    optimizer.step()
    assert logits.shape == (3, 5) and torch.isfinite(loss)
    assert not torch.equal(stem.weight, before[0]) and not torch.equal(head.weight, before[1])


def pooled_size(model, shape) -> tuple[int, int]:
    """The (H, W) of the feature map that the global average pool (the model's last one) gets."""
    pool = [m for m in model.modules() if isinstance(m, torch.nn.AdaptiveAvgPool2d)][-1]
    sizes = []
    pool.register_forward_hook(lambda module, inputs, output: sizes.append(tuple(inputs[0].shape[-2:])))
    with torch.no_grad():
        model.eval()(torch.zeros(1, shape[2], shape[0], shape[1]))
    return sizes[0]


def test_the_small_stem_keeps_small_images_from_vanishing():
    shape = (28, 28, 1)
    assert pooled_size(build_model("resnet18", {}, shape, 10), shape) == (4, 4)  # auto: small below 64 px
    assert pooled_size(build_model("resnet18", {"stem": "imagenet"}, shape, 10), shape) == (1, 1)
    assert pooled_size(build_model("resnet18", {"stem": "small"}, (64, 64, 3), 10), (64, 64, 3)) == (8, 8)
    assert pooled_size(build_model("resnet_small", {}, shape, 10), shape) == (7, 7)


def test_the_imagenet_stem_changes_only_the_input_channels():
    conv = build_model("resnet18", {"stem": "imagenet"}, (64, 64, 1), 10).conv1
    assert (conv.in_channels, conv.kernel_size, conv.stride, conv.padding) == (1, (7, 7), (2, 2), (3, 3))
    patchify = build_model("convnext_tiny", {"stem": "imagenet"}, (28, 28, 2), 10).features[0][0]
    assert (patchify.in_channels, patchify.kernel_size, patchify.stride) == (2, (4, 4), (4, 4))


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_weights_load_by_name(name):
    # torchvision.models through backbones, which makes it importable on a CPU torch
    from augtrain.modalities.image.backbones import models

    ours = build_model(name, {"stem": "imagenet", "dropout": 0.1}, (64, 64, 3), 7)
    getattr(models, name)(weights=None, num_classes=7).load_state_dict(ours.state_dict(), strict=True)


@pytest.mark.parametrize("name, params, message", [
    ("resnet18", {"stem": "huge"}, "stem must be one of 'auto', 'imagenet', 'small', got 'huge'"),
    ("resnet18", {"dropout": 2}, "dropout must be float"),
    ("convnext_tiny", {"weights": "IMAGENET1K_V1"}, "has no parameter"),
    ("resnet_small", {"width": 4096}, "width must be int"),
    ("mobilenet_v3_small", {"stem": None}, "stem must be"),
])
def test_bad_params_are_refused(name, params, message):
    with pytest.raises(ValueError, match=message):
        check_model(name, params)
