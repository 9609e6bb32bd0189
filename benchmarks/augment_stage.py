"""Issue 7, goal 1 (issue 23: per CPU): augtrain's Ray Data augment + normalize stage against a process pool.

Both sides read the same collected Parquet split, decode the same bytes and run the same albumentations
Compose in as many worker processes as Ray Data may use CPUs (a multiprocessing pool of that size, each
worker building the Compose once), and normalize in the consuming process (augtrain's as a trainer's
collate does). Two sizes: digits (8x8 grey, replicated to 20k images) and 224x224 RGB crops of
scikit-learn's sample photos (2k images). After a warm-up pass of each, PASSES timed passes alternate
between the two; the row is the median of the paired ratios with its spread. Goal: augtrain >= 0.85x.
"""

import functools
import json
import multiprocessing
import multiprocessing.pool
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import ray
from augtrain.config.spec import Data, WorkerScaling
from augtrain.datasets.collect import collect
from augtrain.datasets.format import decode_samples
from augtrain.datasets.normalize import normalize
from augtrain.datasets.stream import split_dataset
from augtrain.modalities import modality
from augtrain.modalities.image.augment import augment_images, build_pipeline
from augtrain.training.plan import plan_resources
from augtrain.training.runtime import start_ray
from common import alternated, at_least, encoded_batches, paired_ratio, record
from sklearn.datasets import load_digits, load_sample_images

TRANSFORMS = [
    {"name": "Affine", "rotate": [-10, 10], "translate_percent": [-0.1, 0.1], "scale": [0.9, 1.1], "p": 0.8},
    {"name": "HorizontalFlip", "p": 0.5},
]
BATCH = 256
PASSES = 5
GOAL = at_least(0.85)


def digits_images(n: int) -> np.ndarray:
    images = np.round(load_digits().images * (255 / 16)).astype(np.uint8)[..., None]
    return np.resize(images, (n, *images.shape[1:]))


def photo_crops(n: int, size: int = 224) -> np.ndarray:
    rng = np.random.default_rng(0)
    photos = load_sample_images().images
    crops = []
    for i in range(n):
        photo = photos[i % len(photos)]
        top, left = rng.integers(0, photo.shape[0] - size), rng.integers(0, photo.shape[1] - size)
        crops.append(photo[top : top + size, left : left + size])
    return np.stack(crops)


def collected(images: np.ndarray, folder: Path) -> tuple[str, dict]:
    labels = np.arange(len(images)) % 10
    np.savez(folder / "images.npz", x=images, y=labels)
    # nearly everything in train: the stage under test reads the train split
    result = collect(Data(source=str(folder / "images.npz"), test_size=0.01, val_size=0.01), folder / "dataset")
    return result.path, result.manifest


@functools.cache
def pipeline(transforms_json: str):
    return build_pipeline(json.loads(transforms_json))


def augment_batch(task: tuple[list[bytes], dict]) -> np.ndarray:
    """A pool worker's part: decode and augment one batch of encoded samples."""
    raw, manifest = task
    return augment_images(pipeline(json.dumps(TRANSFORMS)), decode_samples(raw, manifest))


def pool_stage(pool: multiprocessing.pool.Pool, dataset: str, manifest: dict, stats: dict) -> int:
    batches = encoded_batches(dataset, BATCH, manifest)
    return sum(len(normalize(images, stats)) for images in pool.imap(augment_batch, batches))


def augtrain_stage(dataset: str, manifest: dict, stats: dict, plan) -> int:
    """Ray Data workers decode and augment; the consumer normalizes each batch, as a trainer's collate does."""
    ds = split_dataset(dataset, manifest, stats, "train", plan, TRANSFORMS)
    batches = ds.iter_batches(batch_size=BATCH, batch_format="numpy")
    return sum(len(modality(manifest["kind"]).model_input(batch["x"], stats)) for batch in batches)


def main() -> None:
    start_ray()
    cpus = int(ray.cluster_resources()["CPU"])
    # the stage alone (no trainer): Ray Data may use the whole machine, as the pool does (spawned: Ray is up)
    plan = plan_resources(WorkerScaling(), cpus)  # for its task size
    ray.data.DataContext.get_current().execution_options.resource_limits = ray.data.ExecutionResources(cpu=cpus)
    cases = [("augment_stage_digits", digits_images(20_000)), ("augment_stage_224rgb", photo_crops(2_000))]
    wanted = sys.argv[1:] or [name for name, _ in cases]
    for name, images in cases:
        if name not in wanted:
            continue
        with tempfile.TemporaryDirectory() as tmp, multiprocessing.get_context("spawn").Pool(cpus) as pool:
            dataset, manifest = collected(images, Path(tmp))
            channels = manifest["shape"][-1]
            stats = {"mean": [0.5] * channels, "std": [0.25] * channels}
            sides = {"pool": lambda: pool_stage(pool, dataset, manifest, stats),
                     "augtrain": lambda: augtrain_stage(dataset, manifest, stats, plan)}
            rates = alternated(sides, PASSES)
        ratio, text = paired_ratio(rates["augtrain"], rates["pool"], GOAL)
        record(name, f"{text}; augtrain {statistics.median(rates['augtrain']):.0f} img/s, pool "
               f"{statistics.median(rates['pool']):.0f} img/s; both {cpus} worker processes on {cpus} CPUs, "
               f"{len(images)} images, batches of {BATCH})", GOAL, ratio)


if __name__ == "__main__":
    main()
