import pytest
import torch

from augtrain.models import MODELS, build_model, check_model


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 3), (13, 9, 1)])
def test_cnn_fits_the_input_shape(shape):
    model = build_model("cnn", {}, shape, 10)
    logits = model(torch.zeros(5, shape[2], shape[0], shape[1]))
    assert logits.shape == (5, 10)


def test_cnn_is_the_classic_stack():
    convs = [m for m in build_model("cnn", {}, (8, 8, 1), 10).modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 64] and all(c.kernel_size == (3, 3) for c in convs)


def test_registry_checks():
    assert "cnn" in MODELS
    with pytest.raises(ValueError, match="unknown model 'vit'"):
        check_model("vit", {})
