import pytest
import torch
from augtrain.modalities import build_model, check_model, for_model


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 3), (13, 9, 1)])
def test_cnn_fits_the_input_shape(shape):
    model = build_model("cnn", {}, shape, 10)
    logits = model(torch.zeros(5, shape[2], shape[0], shape[1]))
    assert logits.shape == (5, 10)


def test_cnn_is_the_classic_stack():
    convs = [m for m in build_model("cnn", {}, (8, 8, 1), 10).modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 64] and all(c.kernel_size == (3, 3) for c in convs)


def test_registry_checks():
    assert "cnn" in for_model("cnn").models()
    with pytest.raises(ValueError, match="unknown model 'vit'"):
        check_model("vit", {})


SEQUENCE_CASES = [
    ("lstm", {}), ("gru", {}), ("lstm", {"bidirectional": True}), ("gru", {"bidirectional": True, "layers": 1}),
    ("fcn", {}), ("lstm_fcn", {"shuffle": False}), ("lstm_fcn", {}),  # shuffled: T steps, zero-filled or cut
]


@pytest.mark.parametrize("name, params", SEQUENCE_CASES)
def test_padding_does_not_change_the_logits(name, params):
    torch.manual_seed(0)
    model = build_model(name, params, (30, 2), 3).eval()
    x = torch.randn(4, 30, 2)
    x[1, 21:] = float("nan")  # a shorter series in the batch
    padded = torch.cat([x, torch.full((4, 17, 2), float("nan"))], 1)
    with torch.no_grad():
        logits = model(x)
        assert logits.shape == (4, 3) and torch.isfinite(logits).all()
        torch.testing.assert_close(model(padded), logits, atol=1e-5, rtol=1e-5)
        # and the padded tail of the short series is really ignored, not just equal by luck
        torch.testing.assert_close(model(x[1:2, :21]), logits[1:2], atol=1e-5, rtol=1e-5)


def test_classic_stacks():
    lstm = build_model("lstm", {}, (150, 1), 2)
    recurrent = lstm.branches[0].rnn
    assert isinstance(recurrent, torch.nn.LSTM) and (recurrent.num_layers, recurrent.hidden_size) == (2, 128)
    convs = [m for m in build_model("fcn", {}, (150, 1), 2).modules() if isinstance(m, torch.nn.Conv1d)]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [(128, 8), (256, 5), (128, 3)]
    both = build_model("lstm_fcn", {}, (24, 1), 2)
    assert [type(b).__name__ for b in both.branches] == ["RecurrentFeatures", "ConvFeatures"]
    assert both.head.in_features == 128 + 128


def test_sequence_model_params_are_checked():
    with pytest.raises(ValueError, match="model 'lstm' has no parameter"):
        check_model("lstm", {"units": 3})
    with pytest.raises(ValueError, match="bidirectional must be bool"):
        check_model("gru", {"bidirectional": "yes"})


def test_model_sizes_are_bounded_before_anything_is_built():
    """A spec (or a bundle's) cannot ask for a model that takes minutes to build or memory to hold."""
    with pytest.raises(ValueError, match=r"model 'lstm': layers must be int, got '20000' \(Input should be less than or equal to 16\)"):
        check_model("lstm", {"layers": 20000})
    with pytest.raises(ValueError, match="width must be int"):
        check_model("cnn", {"width": 1 << 20})
