"""Sequence transforms: shape, dtype, padding, seeding, and that each does what it claims."""

import numpy as np
import pytest
from augtrain.modalities import check_transform
from augtrain.modalities.sequence.augment import (
    TRANSFORMS,
    SequencePipeline,
    resample,
    series_lengths,
    smooth_curve,
)


@pytest.fixture
def batch():
    """16 sine series of 3 channels, lengths 20..50, NaN-padded to 50 steps."""
    rng = np.random.default_rng(0)
    steps = np.arange(50)
    x = np.sin(steps[None, :, None] / 5 + rng.uniform(0, 6, (16, 1, 3))).astype(np.float32)
    for i, length in enumerate(np.linspace(20, 50, 16).astype(int)):
        x[i, length:] = np.nan
    return x


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_shape_dtype_padding_kept_and_seeded(batch, name):
    transform = [{"name": name, "p": 1.0}]
    first = SequencePipeline(transform, seed=3)(batch)
    assert first.shape == batch.shape and first.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(first), np.isnan(batch))
    np.testing.assert_array_equal(first, SequencePipeline(transform, seed=3)(batch))
    assert not np.allclose(first, SequencePipeline(transform, seed=4)(batch), equal_nan=True)
    assert not np.allclose(first, batch, equal_nan=True)


def test_unseeded_pipeline_draws_fresh_randomness_each_call(batch):
    pipeline = SequencePipeline([{"name": "Jitter", "sigma": 0.1, "p": 1.0}])
    assert not np.allclose(pipeline(batch), pipeline(batch), equal_nan=True)


def test_jitter_adds_noise_of_the_configured_sigma(batch):
    out = SequencePipeline([{"name": "Jitter", "sigma": 0.2, "p": 1.0}], seed=0)(batch)
    difference = (out - batch)[~np.isnan(batch)]
    assert abs(difference.mean()) < 0.01 and abs(difference.std() - 0.2) < 0.01


def test_scaling_multiplies_each_channel_by_one_factor(batch):
    out = SequencePipeline([{"name": "Scaling", "sigma": 0.3, "p": 1.0}], seed=0)(batch)
    ratio = out[:, :5] / batch[:, :5]
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1], ratio.shape), rtol=1e-5)
    assert 0.15 < ratio[:, 0].std() < 0.45


def test_probability_selects_which_series_change(batch):
    out = SequencePipeline([{"name": "Jitter", "p": 0.5}], seed=1)(batch)
    changed = ~np.all((out == batch) | np.isnan(batch), axis=(1, 2))
    assert 0 < changed.sum() < len(batch)
    np.testing.assert_array_equal(SequencePipeline([{"name": "Jitter", "p": 0.0}], seed=1)(batch), batch)


@pytest.mark.parametrize("name", ["TimeWarp", "WindowWarp"])
def test_warps_keep_both_endpoints_and_the_value_range(batch, name):
    out = SequencePipeline([{"name": name, "p": 1.0}], seed=0)(batch)
    lengths = series_lengths(batch)
    rows = np.arange(len(batch))
    np.testing.assert_allclose(out[:, 0], batch[:, 0], atol=1e-6)
    np.testing.assert_allclose(out[rows, lengths - 1], batch[rows, lengths - 1], atol=1e-5)
    # interpolation never leaves a series' own range
    assert (np.nanmax(out, 1) <= np.nanmax(batch, 1) + 1e-6).all()
    assert (np.nanmin(out, 1) >= np.nanmin(batch, 1) - 1e-6).all()


def test_window_slice_is_a_stretched_crop(batch):
    ramp = np.broadcast_to(np.arange(50, dtype=np.float32)[None, :, None], (4, 50, 1)).copy()
    out = SequencePipeline([{"name": "WindowSlice", "ratio": 0.5, "p": 1.0}], seed=0)(ramp)
    start, end = out[:, 0, 0], out[:, -1, 0]
    np.testing.assert_allclose(end - start, 24, atol=1e-4)  # a window of 25 steps ...
    np.testing.assert_allclose(np.diff(out[..., 0], axis=1), 24 / 49, atol=1e-4)  # ... spread over all 50


def test_magnitude_warp_is_smooth_and_centred_on_one(batch):
    ones = np.ones((64, 50, 1), dtype=np.float32)
    curve = SequencePipeline([{"name": "MagnitudeWarp", "sigma": 0.2, "p": 1.0}], seed=0)(ones)
    assert abs(curve.mean() - 1) < 0.05 and 0.1 < curve.std() < 0.3
    # the factor wanders by about sigma over the series but never jumps by that much in one step
    assert np.abs(np.diff(curve, axis=1)).max() < 0.2 < np.ptp(curve, axis=1).max()


def test_smooth_curve_passes_through_its_knots_and_resample_is_identity():
    values = np.random.default_rng(0).normal(size=(2, 5, 1))
    u = np.broadcast_to(np.linspace(0, 1, 5), (2, 5))
    np.testing.assert_allclose(smooth_curve(values, u), values, atol=1e-12)
    x = np.random.default_rng(1).normal(size=(2, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(resample(x, np.broadcast_to(np.arange(8.0), (2, 8)), np.array([8, 8])), x)


@pytest.mark.parametrize(
    "name, params, problem",
    [
        ("Jitter", {"sigma": -1}, "Jitter: sigma: Input should be greater than 0"),
        ("TimeWarp", {"knots": 0}, "TimeWarp: knots: Input should be greater than or equal to 1"),
        ("WindowSlice", {"ratio": 2}, "WindowSlice: ratio: Input should be less than or equal to 1"),
        ("Scaling", {"sgima": 0.1}, "Scaling: sgima: unknown field"),
        ("Jitter", {"p": 1.5}, "Jitter: p: Input should be less than or equal to 1"),
    ],
)
def test_bad_parameters_are_named(name, params, problem):
    with pytest.raises(ValueError, match=problem):
        check_transform(name, params)
