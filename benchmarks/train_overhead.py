"""Issue 7, goals 2-4: `augtrain run` epochs against a plain PyTorch loop, and the CNN's FLOP/s against torch.mm.

The main digits job runs through augtrain (Ray Data streaming the augmentation, Ray Train, one
checkpoint and report per epoch). The baseline is a plain loop in this process over in-memory tensors
augmented once up front with the same Compose: same model, optimizer, schedule, batch size, torch
threads (the plan's threads per worker). Steady state: median over the epochs after the first two.
- ingest: train-pass samples/s, augtrain / plain (goal >= 0.85)
- epoch: whole-epoch time (train, validate, checkpoint, report), augtrain / plain (goal <= 1.15)
- flops: achieved training FLOP/s (samples/s x FLOPs per sample, counted by torch's FlopCounterMode
  over a forward + backward) / torch.mm fp32 FLOP/s on the same threads (goal >= 0.25)
"""

import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import ray
import torch
from augtrain.config.spec import load_job
from augtrain.datasets.format import decode_samples, read_manifest, split_files
from augtrain.datasets.normalize import normalize
from augtrain.datasets.stream import read_split
from augtrain.modalities import build_model
from augtrain.modalities.image.augment import augment_images, build_pipeline
from augtrain.recipes.run import run_job
from augtrain.training.loop import make_optimizer, make_schedule
from augtrain.training.plan import plan_resources
from common import record
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

JOB = Path(__file__).resolve().parents[1] / "jobs" / "digits_cnn.yaml"
EPOCHS = 12
WARM = 2  # epochs left out of the steady state


def plain_loop(job, manifest: dict, stats: dict, dataset: Path, threads: int) -> tuple[list[float], list[float]]:
    """(train-pass seconds, whole-epoch seconds) per epoch of a plain loop on pre-augmented tensors."""
    torch.set_num_threads(threads)
    torch.manual_seed(job.train.seed)
    table = pq.ParquetDataset(split_files(dataset, "train")).read(columns=["x", "y"])
    raw = decode_samples(table.column("x").to_pylist(), manifest)
    x = torch.from_numpy(normalize(augment_images(build_pipeline([t.model_dump() for t in job.augment]), raw), stats))
    y = torch.from_numpy(table.column("y").to_numpy())
    x_val, y_val = (torch.from_numpy(a) for a in read_split(dataset, manifest, stats, "val"))
    config = job.train.model_dump()
    model = build_model(job.model.name, job.model.params, manifest["shape"], len(manifest["classes"]))
    optimizer, loss_fn = make_optimizer(model.parameters(), config), nn.CrossEntropyLoss()
    schedule = make_schedule(optimizer, config)
    train_s, epoch_s = [], []
    for _ in range(job.train.epochs):
        start = time.perf_counter()
        model.train()
        for batch in torch.randperm(len(x)).split(job.train.batch_size):
            loss = loss_fn(model(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        schedule.step()
        train_s.append(time.perf_counter() - start)
        model.eval()
        with torch.no_grad():
            for batch in torch.arange(len(x_val)).split(job.train.batch_size):
                nn.functional.cross_entropy(model(x_val[batch]), y_val[batch])
        epoch_s.append(time.perf_counter() - start)
    return train_s, epoch_s


def flops_per_sample(job, manifest: dict) -> float:
    """Forward + backward FLOPs of one training batch, per sample, as torch counts them."""
    model = build_model(job.model.name, job.model.params, manifest["shape"], len(manifest["classes"]))
    shape = manifest["shape"]
    x = torch.randn(job.train.batch_size, shape[2], shape[0], shape[1])
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(x), torch.zeros(len(x), dtype=torch.long)).backward()
    return counter.get_total_flops() / len(x)


def mm_flops(threads: int, n: int = 1024, repeats: int = 20) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        job = load_job(JOB, [f"run.storage_path={tmp}/runs", f"train.epochs={EPOCHS}"])
        start = time.time()
        run_dir = run_job(job, echo=lambda line: None)
        wall = time.time() - start
        metrics = json.loads((run_dir / "metrics.json").read_text())
        history = metrics["history"]
        dataset = Path(metrics["dataset"]["path"])
        manifest, stats = read_manifest(dataset), json.loads((run_dir / "normalization.json").read_text())
        threads = plan_resources(job.scaling, ray.cluster_resources()["CPU"]).threads_per_worker
        ray.shutdown()  # the plain loop gets the machine to itself, as the Train worker had its share

    # augtrain: train-pass seconds per epoch; epoch periods between consecutive reports
    ours_train = statistics.median(h["train_s"] for h in history[WARM:])
    ours_epoch = statistics.median(np.diff([h["time"] for h in history])[WARM - 1 :])
    first_epoch = history[0]["time"] - start  # Ray start, collect, stats, worker start, first epoch
    train_s, epoch_s = plain_loop(job, manifest, stats, dataset, threads)
    plain_train, plain_epoch = statistics.median(train_s[WARM:]), statistics.median(epoch_s[WARM:])
    n_train = sum(manifest["counts"]["train"].values())

    ingest = plain_train / ours_train  # throughput ratio
    record("ingest_streamed_vs_in_memory", f"ratio={ingest:.2f} (augtrain {n_train / ours_train:.0f} samples/s, "
           f"pre-augmented in memory {n_train / plain_train:.0f} samples/s)", ">=0.85", ingest >= 0.85)
    epoch = ours_epoch / plain_epoch
    record("epoch_time_vs_plain_torch", f"ratio={epoch:.2f} (augtrain {ours_epoch:.3f} s, plain {plain_epoch:.3f} s "
           f"per epoch; job wall {wall:.1f} s for {EPOCHS} epochs; first epoch done after {first_epoch:.1f} s)", "<=1.15",
           epoch <= 1.15)
    achieved = flops_per_sample(job, manifest) * n_train / ours_train
    peak = mm_flops(threads)
    flops = achieved / peak
    record("train_flops_vs_mm", f"ratio={flops:.3f} (digits CNN {achieved / 1e9:.2f} GFLOP/s, "
           f"torch.mm {peak / 1e9:.1f} GFLOP/s, {threads} thread(s))", ">=0.25", flops >= 0.25)


if __name__ == "__main__":
    main()
