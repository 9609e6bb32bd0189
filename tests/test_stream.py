import numpy as np
import pyarrow.parquet as pq
import pytest

from augtrain.collect import collect, decode_samples, split_files
from augtrain.normalize import channel_stats, normalize, to_unit
from augtrain.plan import plan_resources
from augtrain.spec import Data, Scaling
from augtrain.stream import split_dataset

AUGMENT = [{"name": "Affine", "rotate": [-20, 20], "translate_px": [-1, 1], "p": 1.0}]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return collect(Data(source="sklearn-digits"), tmp_path_factory.mktemp("stream") / "digits")


def arrays(ds):
    batches = list(ds.iter_batches(batch_size=None, batch_format="numpy"))
    return np.concatenate([b["x"] for b in batches]), np.concatenate([b["y"] for b in batches])


def test_channel_stats_equal_numpy_and_are_cached(ray_session, dataset):
    stats = channel_stats(dataset.path, dataset.manifest)
    train = pq.read_table(split_files(dataset.path, "train")).column("x").to_pylist()
    pixels = to_unit(decode_samples(train, dataset.manifest)).astype(np.float64)
    np.testing.assert_allclose(stats["mean"], pixels.mean(axis=(0, 1, 2)), rtol=1e-9)
    np.testing.assert_allclose(stats["std"], pixels.std(axis=(0, 1, 2)), rtol=1e-9)
    assert (dataset.path / "stats.json").is_file()
    assert channel_stats(dataset.path, dataset.manifest) == stats


def test_only_train_is_augmented_and_it_changes_every_pass(ray_session, dataset):
    stats = channel_stats(dataset.path, dataset.manifest)
    plan = plan_resources(Scaling(), 2)
    val = split_dataset(dataset.path, dataset.manifest, stats, "val", plan, transforms=[])
    x1, y1 = arrays(val)
    x2, _ = arrays(val)
    np.testing.assert_array_equal(x1, x2)  # no augmentation: identical every pass
    raw = pq.read_table(split_files(dataset.path, "val")).column("x").to_pylist()
    np.testing.assert_allclose(x1, normalize(decode_samples(raw, dataset.manifest), stats), rtol=1e-6)
    assert x1.dtype == np.float32 and x1.shape[1:] == (1, 8, 8)

    train = split_dataset(dataset.path, dataset.manifest, stats, "train", plan, AUGMENT)
    (a, ya), (b, yb) = arrays(train), arrays(train)
    np.testing.assert_array_equal(ya, yb)
    assert a.shape == b.shape and not np.allclose(a, b)  # fresh randomness each epoch
    clean, _ = arrays(split_dataset(dataset.path, dataset.manifest, stats, "train", plan))
    assert not np.allclose(a, clean)
    assert abs(float(clean.mean())) < 1e-4 and abs(float(clean.std()) - 1) < 1e-3
