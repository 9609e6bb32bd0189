import numpy as np
import pytest
import torch
from augtrain.artifacts.explain import attribute, plot_attributions
from augtrain.config.spec import Data
from augtrain.datasets.normalize import SERIES, normalize, to_unit
from augtrain.modalities import build_model, modality, read_source
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_thread")


def train(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, steps: int, batch: int = 64,
          lr: float = 1e-3) -> torch.nn.Module:
    """Plain Adam on random mini-batches; enough to make the models' attributions non-trivial."""
    torch.manual_seed(0)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        pick = torch.randint(len(x), (batch,))
        loss = torch.nn.functional.cross_entropy(model(x[pick]), y[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def logit_gap(model, x: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """f(x)[target] - f(baseline)[target], the baseline zero at real steps and NaN where x is padding."""
    baseline = torch.where(torch.isnan(x), x, torch.zeros_like(x))
    with torch.no_grad():
        gap = model(x) - model(baseline)
    return gap.gather(1, target[:, None])[:, 0].numpy()


def completeness_error(model, x: torch.Tensor, target: torch.Tensor, attributions: np.ndarray) -> np.ndarray:
    """|sum of attributions - logit gap| relative to the gap, per sample."""
    gap = logit_gap(model, x, target)
    total = attributions.reshape(len(x), -1).sum(1)
    return np.abs(total - gap) / np.abs(gap)


@pytest.fixture(scope="module")
def digits_cnn(digits):
    # scaled like augtrain.sources._digits, normalized with train-split stats like a job
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    order = np.random.default_rng(0).permutation(len(images))
    train_idx, test_idx = order[:1400], order[1400:]
    unit = to_unit(images[train_idx])
    stats = {"mean": [float(unit.mean())], "std": [float(unit.std())]}
    x = normalize(images, stats)
    y = digits.target.astype(np.int64)
    model = train(build_model("cnn", {}, (8, 8, 1), 10), x[train_idx], y[train_idx], steps=300)
    test_x = torch.from_numpy(x[test_idx[:64]])
    with torch.no_grad():
        predicted = model(test_x).argmax(1)
    assert (predicted.numpy() == y[test_idx[:64]]).mean() > 0.9  # a real model, not noise
    return model, test_x, predicted


@pytest.fixture(scope="module")
def gunpoint():
    listing = read_source(Data(source="ucr:GunPoint"))[1]
    x = normalize(np.stack([sample for _, _, sample, _ in listing.decode()]), SERIES)
    y = np.asarray([int(label) - 1 for label in listing.labels], dtype=np.int64)
    test = np.asarray(listing.given) == "test"
    short = x[test][:6].copy()
    for i, length in enumerate([150, 120, 90, 61, 150, 37]):  # some series end early
        short[i, length:] = np.nan
    return x[~test], y[~test], torch.from_numpy(short)


def test_digit_attributions_are_complete(digits_cnn):
    model, x, predicted = digits_cnn
    attributions = attribute(model, x, predicted)
    assert attributions.shape == x.shape and np.isfinite(attributions).all()
    error = completeness_error(model, x, predicted, attributions)
    assert np.median(error) < 0.01 and (error < 0.05).mean() > 0.9


def test_occluding_top_attributed_pixels_hurts_more_than_random(digits_cnn):
    model, x, predicted = digits_cnn
    attributions = torch.from_numpy(attribute(model, x, predicted)).flatten(1)
    k = 8
    top = attributions.topk(k, 1).indices
    random = torch.stack([torch.randperm(attributions.shape[1], generator=torch.Generator().manual_seed(i))[:k]
                          for i in range(len(x))])

    def drop(occluded: torch.Tensor) -> float:
        """Mean fall of the target logit when the `occluded` pixels are set to the baseline."""
        masked = x.flatten(1).scatter(1, occluded, 0.0).view_as(x)
        with torch.no_grad():
            before, after = model(x), model(masked)
        return (before - after).gather(1, predicted[:, None]).mean().item()

    assert drop(top) > 2 * drop(random) > 0


# the LSTM learns GunPoint slowly: a higher rate moves its logit gaps well away from zero
@pytest.mark.parametrize("name, steps, lr", [("fcn", 30, 1e-3), ("lstm", 60, 3e-3)])
def test_sequence_padding_gets_zero_attribution(gunpoint, name, steps, lr):
    train_x, train_y, x = gunpoint
    model = train(build_model(name, {}, (150, 1), 2), train_x, train_y, steps=steps, batch=25, lr=lr)
    target = torch.tensor([0, 1, 0, 1, 0, 1])
    attributions = attribute(model, x, target)
    padding = torch.isnan(x).numpy()
    assert padding.any() and np.isfinite(attributions).all()
    assert (attributions[padding] == 0).all() and (attributions[~padding] != 0).mean() > 0.9
    assert completeness_error(model, x, target, attributions).max() < 0.05


def colourful(path) -> float:
    """Fraction of clearly coloured (not grey, not white) pixels of a PNG."""
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 0 and image.height > 0
        pixels = np.asarray(image.convert("RGB")).astype(int)
    return float(((pixels.max(2) - pixels.min(2)) > 60).mean())


def test_plots_are_real_pngs(digits_cnn, gunpoint, tmp_path):
    model, x, predicted = digits_cnn
    attributions = attribute(model, x[:8], predicted[:8], steps=16)
    plot_attributions(modality("image"), x[:8].numpy(), attributions, [f"pred {p}" for p in predicted[:8].tolist()],
                      tmp_path / "images.png", {})
    _, _, series = gunpoint
    model = build_model("fcn", {}, (150, 1), 2)
    target = torch.zeros(len(series), dtype=torch.long)
    plot_attributions(modality("sequence"), series.numpy(), attribute(model, series, target, steps=16),
                      ["a series"] * len(series), tmp_path / "series.png", {})
    assert colourful(tmp_path / "images.png") > 0.05
    assert colourful(tmp_path / "series.png") > 0.005
