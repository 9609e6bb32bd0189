"""Issue 22: training FLOP/s on a compute-bound job, against torch.mm and a plain PyTorch loop.

The digits CNN's 8x8 convolutions are overhead-bound (train_overhead.py), so this measures ResNet18 on the
64x64 RGB photo crops (image_data.photo_crops) through `augtrain run` (jobs/photo_crops_resnet.yaml with
model.name=resnet18): achieved training FLOP/s (samples/s x the FLOPs of a forward + backward per sample,
counted by torch's FlopCounterMode) / torch.mm's fp32 FLOP/s on the same threads. Beside it the same ratio
of a plain loop over the same pre-augmented tensors (train_overhead.plain_loop: same model, optimizer,
batch size, threads). REPEATS alternating repetitions; the median of the epochs after the first WARM.
Goal: augtrain >= 0.35.

    cd benchmarks && PYTHONPATH=. python train_flops.py
"""

import statistics
import tempfile
from pathlib import Path

from common import at_least, record, repeated
from image_data import photo_crops
from train_overhead import WARM, augtrain_run, flops_per_sample, mm_flops, plain_loop

JOB = Path(__file__).resolve().parents[1] / "jobs" / "photo_crops_resnet.yaml"
EPOCHS = 8
REPEATS = 3
GOAL = at_least(0.35)


def main() -> None:
    ours, plain = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(REPEATS):
            overrides = [f"data.source={photo_crops(0)}", f"data.path={tmp}/crops", f"run.storage_path={tmp}/runs",
                         "model.name=resnet18", "model.params={}"]
            job, history, manifest, stats, dataset, threads, _, _ = augtrain_run(overrides, JOB, EPOCHS)
            train_s, _ = plain_loop(job, manifest, stats, dataset, threads)
            n_train, mm = sum(manifest["counts"]["train"].values()), mm_flops(threads)
            per_sample = flops_per_sample(job, manifest)
            ours.append(per_sample * n_train / statistics.median(h["train_s"] for h in history[WARM:]) / mm)
            plain.append(per_sample * n_train / statistics.median(train_s[WARM:]) / mm)
            print(f"#{repeat + 1}: augtrain {ours[-1]:.3f}, plain loop {plain[-1]:.3f} of torch.mm "
                  f"({mm / 1e9:.1f} GFLOP/s, {threads} thread(s)); {per_sample / 1e9:.2f} GFLOP per sample", flush=True)
    value, text = repeated("ratio", ours, GOAL, digits=3)
    record("train_flops_resnet18_vs_mm", f"{text}); plain PyTorch loop {statistics.median(plain):.3f} "
           f"(spread {min(plain):.3f}-{max(plain):.3f}); ResNet18 on 64x64 RGB photo crops, {REPEATS} alternating "
           f"repetitions of {EPOCHS} epochs, {threads} torch thread(s) both sides, fp32", GOAL, value)


if __name__ == "__main__":
    main()
