"""Issue 19: augtrain's Ray Data audio stage (decode, waveform augmentation, log-mel spectrogram,
normalization, SpecAugment masks) against a plain single-process loop doing the same work.

Both sides read the same collected FSDD train split (2,430 one-second recordings at 8 kHz) and run
jobs/fsdd_cnn.yaml's transforms and spectrogram through the same `Modality.ship`, on the same 2 CPUs;
clips/s is the median of 3 passes, the two sides alternating, after a warm-up pass of each. Goal:
augtrain >= 0.85x the plain loop (as the image stage's goal); the result also gives the ratio per
CPU (Ray Data may use every CPU, the loop one).

    cd benchmarks && PYTHONPATH=. python audio_augment_stage.py [--fsdd RECORDINGS]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import ray
from augtrain.config.spec import WorkerScaling, load_job
from augtrain.datasets.collect import collect
from augtrain.datasets.format import decode_samples, split_files
from augtrain.datasets.stats import channel_stats
from augtrain.datasets.stream import split_dataset
from augtrain.modalities import for_manifest
from augtrain.training.plan import plan_resources
from augtrain.training.runtime import start_ray
from common import record
from fsdd import prepare

JOB = Path(__file__).resolve().parents[1] / "jobs" / "fsdd_cnn.yaml"
BATCH = 64
PASSES = 3


def plain_loop(dataset: str, manifest: dict, stats: dict, transforms: list[dict]) -> int:
    audio = for_manifest(manifest)
    augmenter, n = audio.augmenter(transforms), 0
    for file in split_files(dataset, "train"):
        for batch in pq.ParquetFile(file).iter_batches(BATCH, columns=["x"]):
            n += len(audio.ship(decode_samples(batch.column("x").to_pylist(), manifest), stats, augmenter))
    return n


def augtrain_stage(dataset: str, manifest: dict, stats: dict, transforms: list[dict], plan) -> int:
    ds = split_dataset(dataset, manifest, stats, "train", plan, transforms)
    return sum(len(batch["x"]) for batch in ds.iter_batches(batch_size=BATCH, batch_format="numpy"))


def timed(run_pass) -> float:
    start = time.perf_counter()
    n = run_pass()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fsdd", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets/fsdd/recordings")
    args = parser.parse_args()
    start_ray()
    cpus = ray.cluster_resources()["CPU"]
    plan = plan_resources(WorkerScaling(), cpus)  # for its task size
    # the stage alone (no trainer): Ray Data may use the whole machine
    ray.data.DataContext.get_current().execution_options.resource_limits = ray.data.ExecutionResources(cpu=cpus)
    with tempfile.TemporaryDirectory() as tmp:
        table = prepare(args.fsdd, Path(tmp) / "fsdd")
        job = load_job(JOB, [f"data.source={table}", f"data.path={Path(tmp) / 'collected'}"])
        collected = collect(job.data)
        manifest = collected.manifest
        stats = channel_stats(collected.path, manifest)
        transforms = [t.model_dump() for t in job.augment]
        sides = {"plain": lambda: plain_loop(collected.path, manifest, stats, transforms),
                 "augtrain": lambda: augtrain_stage(collected.path, manifest, stats, transforms, plan)}
        rates = {name: [] for name in sides}
        for name, side in sides.items():
            side()  # warm-up: worker start, imports (librosa, audiomentations), the transforms built
        for _ in range(PASSES):
            for name, side in sides.items():
                rates[name].append(timed(side))
    plain, ours = statistics.median(rates["plain"]), statistics.median(rates["augtrain"])
    ratio = ours / plain
    spread = f"{min(rates['augtrain']) / max(rates['plain']):.2f}-{max(rates['augtrain']) / min(rates['plain']):.2f}"
    record("audio_augment_stage", f"ratio={ratio:.2f} (spread {spread}; augtrain {ours:.0f} clips/s on {cpus:.0f} CPUs, "
           f"plain loop {plain:.0f} clips/s on 1; per CPU {ratio / cpus:.2f})", ">=0.85", ratio >= 0.85)


if __name__ == "__main__":
    main()
