from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from augtrain.config.spec import Data, WorkerScaling
from augtrain.datasets.collect import collect
from augtrain.datasets.format import decode_samples, split_files
from augtrain.datasets.normalize import SERIES, normalize, to_unit
from augtrain.datasets.stats import train_stats
from augtrain.datasets.stream import split_dataset
from augtrain.modalities import modality
from augtrain.training.loop import ToTensors
from augtrain.training.plan import plan_resources
from conftest import loaded_by_import

AUGMENT = [{"name": "Affine", "rotate": [-20, 20], "translate_px": [-1, 1], "p": 1.0}]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return collect(Data(source="sklearn-digits"), tmp_path_factory.mktemp("stream") / "digits")


def arrays(ds, stats, kind="image"):
    """A whole dataset as the model sees it: each shipped batch through the consumers' collate."""
    batches = list(ds.iter_torch_batches(batch_size=None, collate_fn=ToTensors(stats, modality(kind))))
    return np.concatenate([b["x"].numpy() for b in batches]), np.concatenate([b["y"].numpy() for b in batches])


def test_train_stats_equal_numpy_and_are_cached(ray_session, dataset):
    stats = train_stats(dataset.path, dataset.manifest)
    train = pq.read_table(split_files(dataset.path, "train")).column("x").to_pylist()
    pixels = to_unit(decode_samples(train, dataset.manifest)).astype(np.float64)
    np.testing.assert_allclose(stats["mean"], pixels.mean(axis=(0, 1, 2)), rtol=1e-9)
    np.testing.assert_allclose(stats["std"], pixels.std(axis=(0, 1, 2)), rtol=1e-9)
    assert (Path(dataset.path) / "stats.json").is_file()
    assert train_stats(dataset.path, dataset.manifest) == stats


def test_only_train_is_augmented_and_it_changes_every_pass(ray_session, dataset):
    stats = train_stats(dataset.path, dataset.manifest)
    plan = plan_resources(WorkerScaling(), 2)
    val = split_dataset(dataset.path, dataset.manifest, stats, "val", plan, transforms=[])
    x1, y1 = arrays(val, stats)
    x2, _ = arrays(val, stats)
    np.testing.assert_array_equal(x1, x2)  # no augmentation: identical every pass
    raw = pq.read_table(split_files(dataset.path, "val")).column("x").to_pylist()
    np.testing.assert_allclose(x1, normalize(decode_samples(raw, dataset.manifest), stats), rtol=1e-6)
    assert x1.dtype == np.float32 and x1.shape[1:] == (1, 8, 8)

    train = split_dataset(dataset.path, dataset.manifest, stats, "train", plan, AUGMENT)
    shipped = next(iter(train.iter_batches(batch_size=None, batch_format="numpy")))["x"]
    assert shipped.dtype == np.uint8 and shipped.shape[1:] == (8, 8, 1)  # normalized by the consumer
    a, _ = arrays(train, stats)
    clean, _ = arrays(split_dataset(dataset.path, dataset.manifest, stats, "train", plan), stats)
    assert a.shape == clean.shape and not np.allclose(a, clean)
    assert abs(float(clean.mean())) < 1e-4 and abs(float(clean.std()) - 1) < 1e-3


def test_augmentation_is_seeded_by_the_run_whatever_the_number_of_data_tasks(ray_session, dataset):
    """The same seed draws the same augmentations on 4 or 8 concurrent data tasks; another seed, others."""
    from ray.data import DataContext

    DataContext.get_current().execution_options.preserve_order = True  # as training.loop.fit sets it
    stats = train_stats(dataset.path, dataset.manifest)
    a, ya = arrays(split_dataset(dataset.path, dataset.manifest, stats, "train", plan_resources(WorkerScaling(), 2), AUGMENT), stats)
    eighths = plan_resources(WorkerScaling(), 0.5)
    assert eighths.cpus_per_data_task == 0.25
    b, yb = arrays(split_dataset(dataset.path, dataset.manifest, stats, "train", eighths, AUGMENT), stats)
    np.testing.assert_array_equal(ya, yb)
    np.testing.assert_array_equal(a, b)
    c, yc = arrays(split_dataset(dataset.path, dataset.manifest, stats, "train", eighths, AUGMENT, seed=1), stats)
    np.testing.assert_array_equal(ya, yc)
    assert not np.allclose(a, c)


def test_one_training_stream_carries_every_epoch_augmented_afresh(ray_session, dataset):
    """passes=3: every sample three times in one execution, each copy augmented on its own."""
    stats = train_stats(dataset.path, dataset.manifest)
    plan = plan_resources(WorkerScaling(), 2)
    clean, y = arrays(split_dataset(dataset.path, dataset.manifest, stats, "train", plan), stats)
    x3, y3 = arrays(split_dataset(dataset.path, dataset.manifest, stats, "train", plan, AUGMENT, passes=3), stats)
    assert len(y3) == 3 * len(y)
    np.testing.assert_array_equal(np.bincount(y3), 3 * np.bincount(y))
    # each pass draws its own transforms: the augmented copies of one class are (almost) all distinct.
    # Passes repeating their draws would leave a third distinct; two draws that round to the same
    # 8x8 image are rare but happen (383 of 384 distinct once in CI)
    copies = x3[(y3 == y[0])]
    assert len(np.unique(copies.reshape(len(copies), -1), axis=0)) >= 0.98 * len(copies)


@pytest.mark.parametrize("mode", ["channel", "series"])
def test_sequences_stream_normalized_then_augmented(ray_session, tmp_path, mode):
    """Unequal-length series keep their NaN padding through normalization and augmentation."""
    collected = collect(Data(source="ucr:PickupGestureWiimoteZ"), tmp_path / "pg")
    manifest = collected.manifest
    stats = SERIES if mode == "series" else train_stats(collected.path, manifest)
    plan = plan_resources(WorkerScaling(), 2)
    raw = decode_samples(pq.read_table(split_files(collected.path, "val")).column("x").to_pylist(), manifest)
    x, _ = arrays(split_dataset(collected.path, manifest, stats, "val", plan), stats, "sequence")
    assert x.shape == raw.shape and x.dtype == np.float32  # (N, T, C): no transpose for sequences
    np.testing.assert_array_equal(np.isnan(x), np.isnan(raw))
    if mode == "series":
        np.testing.assert_allclose(np.nanmean(x, 1), 0, atol=1e-5)
        np.testing.assert_allclose(np.nanstd(x, 1), 1, atol=1e-4)
    else:
        train = decode_samples(pq.read_table(split_files(collected.path, "train")).column("x").to_pylist(), manifest)
        np.testing.assert_allclose(stats["mean"], np.nanmean(train.astype(np.float64), (0, 1)), rtol=1e-9)

    transforms = [{"name": "TimeWarp", "p": 1.0}, {"name": "Jitter", "sigma": 0.1, "p": 1.0}]
    first, y1 = arrays(split_dataset(collected.path, manifest, stats, "train", plan, transforms), stats, "sequence")
    second, y2 = arrays(split_dataset(collected.path, manifest, stats, "train", plan, transforms, seed=1), stats, "sequence")
    clean, _ = arrays(split_dataset(collected.path, manifest, stats, "train", plan), stats, "sequence")
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(np.isnan(first), np.isnan(clean))
    assert not np.allclose(first, second, equal_nan=True) and not np.allclose(first, clean, equal_nan=True)


def test_series_of_huge_values_normalize_like_small_ones():
    """A series' z-score does not depend on its scale: float32 squares of 1e20 would overflow to inf."""
    series = np.array([[[1.0], [2.0], [3.0], [np.nan]]], dtype=np.float32)
    small, huge = normalize(series, SERIES), normalize(series * np.float32(1e20), SERIES)
    np.testing.assert_allclose(small[0, :3, 0], [-1.2247449, 0, 1.2247449], rtol=1e-6)
    np.testing.assert_allclose(huge, small, rtol=1e-6)
    assert np.isnan(huge[0, 3, 0])


def test_the_stream_imports_without_albumentations_or_torch():
    """Ray Data's coordinators of every run and the val/test readers load this module, not the augmentation."""
    assert loaded_by_import("augtrain.datasets.stream", ["torch", "albumentations"]) == []
