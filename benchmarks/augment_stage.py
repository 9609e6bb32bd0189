"""Issue 7, goal 1: augtrain's Ray Data augment + normalize stage against a plain single-process loop.

Both sides read the same collected Parquet split, decode the same bytes, run the same albumentations
Compose and the same normalize (augtrain's in the consumer, as a trainer's collate does), on the same
2 CPUs; images/s is the median of 3 timed passes after a warm-up pass. Two sizes: digits (8x8 grey,
replicated to 20k images) and 224x224 RGB crops of scikit-learn's sample photos (2k images).
Goal: augtrain >= 0.85x the plain loop.
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import ray
from augtrain.config.spec import Data, WorkerScaling
from augtrain.datasets.collect import collect
from augtrain.datasets.format import decode_samples, split_files
from augtrain.datasets.normalize import normalize
from augtrain.datasets.stream import split_dataset
from augtrain.modalities import modality
from augtrain.modalities.image.augment import augment_images, build_pipeline
from augtrain.training.plan import plan_resources
from augtrain.training.runtime import start_ray
from common import record
from sklearn.datasets import load_digits, load_sample_images

TRANSFORMS = [
    {"name": "Affine", "rotate": [-10, 10], "translate_percent": [-0.1, 0.1], "scale": [0.9, 1.1], "p": 0.8},
    {"name": "HorizontalFlip", "p": 0.5},
]
BATCH = 256
PASSES = 3


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


def median_rate(run_pass) -> float:
    run_pass()  # warm-up: worker start, imports, the Compose built once per process
    rates = []
    for _ in range(PASSES):
        start = time.perf_counter()
        n = run_pass()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def plain_loop(dataset: str, manifest: dict, stats: dict) -> int:
    pipeline, n = build_pipeline(TRANSFORMS), 0
    for file in split_files(dataset, "train"):
        for batch in pq.ParquetFile(file).iter_batches(BATCH, columns=["x"]):
            n += len(normalize(augment_images(pipeline, decode_samples(batch.column("x").to_pylist(), manifest)), stats))
    return n


def augtrain_stage(dataset: str, manifest: dict, stats: dict, plan) -> int:
    """Ray Data workers decode and augment; the consumer normalizes each batch, as a trainer's collate does."""
    ds = split_dataset(dataset, manifest, stats, "train", plan, TRANSFORMS)
    batches = ds.iter_batches(batch_size=BATCH, batch_format="numpy")
    return sum(len(modality(manifest["kind"]).model_input(batch["x"], stats)) for batch in batches)


def main() -> None:
    start_ray()
    cpus = ray.cluster_resources()["CPU"]
    # the stage alone (no trainer): Ray Data may use the whole machine, as the plain loop does
    plan = plan_resources(WorkerScaling(), cpus)  # for its task size
    ray.data.DataContext.get_current().execution_options.resource_limits = ray.data.ExecutionResources(cpu=cpus)
    cases = [("augment_stage_digits", digits_images(20_000)), ("augment_stage_224rgb", photo_crops(2_000))]
    wanted = sys.argv[1:] or [name for name, _ in cases]
    for name, images in cases:
        if name not in wanted:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            dataset, manifest = collected(images, Path(tmp))
            channels = manifest["shape"][-1]
            stats = {"mean": [0.5] * channels, "std": [0.25] * channels}
            plain = median_rate(lambda: plain_loop(dataset, manifest, stats))
            ours = median_rate(lambda: augtrain_stage(dataset, manifest, stats, plan))
        ratio = ours / plain
        record(name, f"ratio={ratio:.2f} (augtrain {ours:.0f} img/s, plain loop {plain:.0f} img/s)", ">=0.85",
               ratio >= 0.85)


if __name__ == "__main__":
    main()
