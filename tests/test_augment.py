import numpy as np
import pytest
from augtrain.modalities import check_transform
from augtrain.modalities.image.augment import augment_images, build_pipeline

PIPELINE = [{"name": "Affine", "rotate": [-15, 15], "translate_px": [-1, 1], "p": 1.0}, {"name": "GaussNoise", "p": 0.5}]


@pytest.fixture
def images(digits):
    return np.round(digits.images[:32] * 255 / 16).astype(np.uint8)[..., None]


def test_same_seed_same_output_and_shape_dtype_kept(images):
    first = augment_images(build_pipeline(PIPELINE, seed=7), images)
    second = augment_images(build_pipeline(PIPELINE, seed=7), images)
    other = augment_images(build_pipeline(PIPELINE, seed=8), images)
    assert first.shape == images.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, images)


def test_unseeded_pipelines_draw_fresh_randomness(images):
    pipeline = build_pipeline(PIPELINE)
    assert not np.array_equal(augment_images(pipeline, images), augment_images(pipeline, images))


def test_rgb_images_keep_their_channels():
    rgb = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    out = augment_images(build_pipeline([{"name": "HorizontalFlip", "p": 1.0}], seed=0), rgb)
    np.testing.assert_array_equal(out, rgb[:, :, ::-1])


def test_check_transform_rejects_bad_names_and_parameters():
    check_transform("Affine", {"rotate": [-5, 5], "p": 0.5})
    with pytest.raises(ValueError, match="unknown transform 'Rotatte'"):
        check_transform("Rotatte", {})
    with pytest.raises(ValueError, match=r"Affine: unknown parameter\(s\) \['angle'\]"):
        check_transform("Affine", {"angle": 5})
    with pytest.raises(ValueError, match="Affine: p: Input should be less than or equal to 1"):
        check_transform("Affine", {"p": 3})
