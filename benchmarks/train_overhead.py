"""Issue 7, goals 2-4: `augtrain run` epochs against a plain PyTorch loop, and the CNN's FLOP/s against torch.mm.

The main digits job runs through augtrain (Ray Data streaming the augmentation, Ray Train, one
checkpoint and report per epoch). The baseline is a plain loop in this process over in-memory tensors
augmented once up front with the same Compose: same model, optimizer, schedule, batch size, torch
threads (the plan's threads per worker). Steady state: median over the epochs after the first two.
REPEATS alternating repetitions (augtrain's run, then the plain loop); each row is the median with its spread.
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
from common import at_least, at_most, record, repeated
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

JOB = Path(__file__).resolve().parents[1] / "jobs" / "digits_cnn.yaml"
EPOCHS = 12
WARM = 2  # epochs left out of the steady state
REPEATS = 3
INGEST, EPOCH, FLOPS = at_least(0.85), at_most(1.15), at_least(0.25)


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
    optimizer, loss_fn = make_optimizer(model, config), nn.CrossEntropyLoss()
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


def augtrain_run(overrides: list[str], job_file: Path = JOB, epochs: int = EPOCHS) -> tuple:
    """One `run_job` of a job (the main one by default): (job, its epochs' history, manifest, stats, dataset,
    threads, wall, seconds from the start to the first finished epoch); Ray is shut down after it."""
    job = load_job(job_file, [*overrides, f"train.epochs={epochs}"])
    start = time.time()
    run_dir = run_job(job, echo=lambda line: None)
    wall = time.time() - start
    metrics = json.loads((run_dir / "metrics.json").read_text())
    dataset = Path(metrics["dataset"]["path"])
    stats = json.loads((run_dir / "normalization.json").read_text())
    threads = plan_resources(job.scaling, ray.cluster_resources()["CPU"]).threads_per_worker
    ray.shutdown()  # the plain loop gets the machine to itself, as the Train worker had its share
    history = metrics["history"]
    return job, history, read_manifest(dataset), stats, dataset, threads, wall, history[0]["time"] - start


def main() -> None:
    ingest, epoch, flops, sides, starts = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(REPEATS):  # alternating: augtrain's run, then the plain loop on its data
            job, history, manifest, stats, dataset, threads, wall, first = augtrain_run(
                [f"run.storage_path={tmp}/runs{repeat}", f"data.path={tmp}/digits"])
            ours_train = statistics.median(h["train_s"] for h in history[WARM:])
            ours_epoch = statistics.median(np.diff([h["time"] for h in history])[WARM - 1 :])
            train_s, epoch_s = plain_loop(job, manifest, stats, dataset, threads)
            plain_train, plain_epoch = statistics.median(train_s[WARM:]), statistics.median(epoch_s[WARM:])
            n_train = sum(manifest["counts"]["train"].values())
            ingest.append(plain_train / ours_train)
            epoch.append(ours_epoch / plain_epoch)
            flops.append(flops_per_sample(job, manifest) * n_train / ours_train / mm_flops(threads))
            sides.append((n_train / ours_train, n_train / plain_train, ours_epoch, plain_epoch))
            starts.append((wall, first))
            print(f"#{repeat + 1}: ingest {ingest[-1]:.2f}, epoch {epoch[-1]:.2f}, flops {flops[-1]:.3f}", flush=True)
    median = [statistics.median(column) for column in zip(*sides)]
    setup = (f"{REPEATS} alternating repetitions, {EPOCHS} epochs each, {threads} torch thread(s) both sides; "
             f"augtrain job wall {statistics.median(w for w, _ in starts):.1f} s, first epoch done after "
             f"{statistics.median(f for _, f in starts):.1f} s, medians")
    value, text = repeated("ratio", ingest, INGEST)
    record("ingest_streamed_vs_in_memory", f"{text}; augtrain {median[0]:.0f} samples/s, pre-augmented in memory "
           f"{median[1]:.0f} samples/s; {setup})", INGEST, value)
    value, text = repeated("ratio", epoch, EPOCH)
    record("epoch_time_vs_plain_torch", f"{text}; augtrain {median[2]:.3f} s, plain {median[3]:.3f} s per epoch; "
           f"{setup})", EPOCH, value)
    value, text = repeated("ratio", flops, FLOPS, digits=3)
    record("train_flops_vs_mm", f"{text}; digits CNN against torch.mm fp32 FLOP/s on the same threads; {setup})",
           FLOPS, value)


if __name__ == "__main__":
    main()
