"""Issue 19: augtrain's Ray Data audio stage (decode, waveform augmentation, log-mel spectrogram,
normalization, SpecAugment masks) against a process pool doing the same work (issue 23: per CPU).

Both sides read the same collected FSDD train split (2,430 one-second recordings at 8 kHz) and run
jobs/fsdd_cnn.yaml's transforms and spectrogram through the same `Modality.ship`, in as many worker
processes as Ray Data may use CPUs (a multiprocessing pool of that size); clips/s of PASSES passes, the
two sides alternating after a warm-up pass of each; the row is the median paired ratio with its spread.
Goal: augtrain >= 0.85x the pool (as the image stage's goal).

    cd benchmarks && PYTHONPATH=. python audio_augment_stage.py [--fsdd RECORDINGS]
"""

import argparse
import functools
import json
import multiprocessing
import multiprocessing.pool
import statistics
import tempfile
from pathlib import Path

import ray
from augtrain.config.spec import WorkerScaling, load_job
from augtrain.datasets.collect import collect
from augtrain.datasets.format import decode_samples
from augtrain.datasets.stats import channel_stats
from augtrain.datasets.stream import split_dataset
from augtrain.modalities import for_manifest
from augtrain.training.plan import plan_resources
from augtrain.training.runtime import start_ray
from common import alternated, at_least, encoded_batches, paired_ratio, record
from fsdd import RECORDINGS, prepare

JOB = Path(__file__).resolve().parents[1] / "jobs" / "fsdd_cnn.yaml"
BATCH = 64
PASSES = 5
GOAL = at_least(0.85)


@functools.cache
def shipper(manifest_json: str, transforms_json: str):
    audio = for_manifest(json.loads(manifest_json))
    return audio, audio.augmenter(json.loads(transforms_json))


def ship_batch(task: tuple[list[bytes], tuple[str, str, dict]]):
    """A pool worker's part: one batch of encoded clips decoded, augmented and made model input."""
    raw, (manifest_json, transforms_json, stats) = task
    audio, augmenter = shipper(manifest_json, transforms_json)
    return audio.ship(decode_samples(raw, json.loads(manifest_json)), stats, augmenter)


def pool_stage(pool: multiprocessing.pool.Pool, dataset: str, manifest: dict, stats: dict, transforms: list[dict]) -> int:
    batches = encoded_batches(dataset, BATCH, (json.dumps(manifest), json.dumps(transforms), stats))
    return sum(len(clips) for clips in pool.imap(ship_batch, batches))


def augtrain_stage(dataset: str, manifest: dict, stats: dict, transforms: list[dict], plan) -> int:
    ds = split_dataset(dataset, manifest, stats, "train", plan, transforms)
    return sum(len(batch["x"]) for batch in ds.iter_batches(batch_size=BATCH, batch_format="numpy"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fsdd", type=Path, default=RECORDINGS)
    args = parser.parse_args()
    start_ray()
    cpus = int(ray.cluster_resources()["CPU"])
    plan = plan_resources(WorkerScaling(), cpus)  # for its task size
    # the stage alone (no trainer): Ray Data may use the whole machine, as the pool does (spawned: Ray is up)
    ray.data.DataContext.get_current().execution_options.resource_limits = ray.data.ExecutionResources(cpu=cpus)
    with tempfile.TemporaryDirectory() as tmp, multiprocessing.get_context("spawn").Pool(cpus) as pool:
        table = prepare(args.fsdd, Path(tmp) / "fsdd")
        job = load_job(JOB, [f"data.source={table}", f"data.path={Path(tmp) / 'collected'}"])
        collected = collect(job.data)
        manifest = collected.manifest
        stats = channel_stats(collected.path, manifest)
        transforms = [t.model_dump() for t in job.augment]
        rates = alternated({"pool": lambda: pool_stage(pool, collected.path, manifest, stats, transforms),
                            "augtrain": lambda: augtrain_stage(collected.path, manifest, stats, transforms, plan)},
                           PASSES)
    ratio, text = paired_ratio(rates["augtrain"], rates["pool"], GOAL)
    record("audio_augment_stage", f"{text}; augtrain {statistics.median(rates['augtrain']):.0f} clips/s, pool "
           f"{statistics.median(rates['pool']):.0f} clips/s; both {cpus} worker processes on {cpus} CPUs)", GOAL, ratio)


if __name__ == "__main__":
    main()
