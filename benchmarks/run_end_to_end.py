"""Issue 24, goal 2: `augtrain run` of the main job end to end against a plain PyTorch script doing the same work.

Both start as fresh processes on this machine's CPUs, on the same collected digits dataset (collected once
before: neither side's cost), alternated REPEATS times; wall time from the command's start to its last line,
and to its first finished epoch. augtrain: `augtrain run jobs/digits_cnn.yaml` (Ray, the Ray Data stream
augmenting every epoch, checkpoints, test metrics, bundle, report). Plain: one process reads the same shards,
augments the training images with the same albumentations Compose every epoch, trains the same model with
the same optimizer, schedule, batch size, epochs and torch threads (the plan's), validates every epoch, saves
the weights every epoch, and scores the test split (accuracy and macro F1). Goal: median ratio <= 1.6.
"""

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import at_most, paired_ratio, record

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "jobs" / "digits_cnn.yaml"
AUGTRAIN = str(Path(sys.executable).with_name("augtrain"))
REPEATS = 3
GOAL = at_most(1.6)
PLAIN = """
import sys, time
from pathlib import Path
import numpy as np, pyarrow.parquet as pq, torch
from safetensors.torch import save_file
from sklearn.metrics import f1_score
from augtrain.config.spec import load_job
from augtrain.datasets.format import decode_samples, read_manifest, split_files
from augtrain.datasets.normalize import normalize
from augtrain.modalities import build_model
from augtrain.modalities.image.augment import augment_images, build_pipeline
from augtrain.training.loop import make_optimizer, make_schedule
job, dataset, out = load_job(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
torch.set_num_threads(1)
torch.manual_seed(job.train.seed)
manifest = read_manifest(dataset)
def split(name):
    table = pq.ParquetDataset(split_files(dataset, name)).read(columns=["x", "y"])
    return decode_samples(table.column("x").to_pylist(), manifest), torch.from_numpy(table.column("y").to_numpy())
(x_train, y_train), (x_val, y_val), (x_test, y_test) = split("train"), split("val"), split("test")
unit = x_train.astype(np.float64) / 255
stats = {"mean": unit.mean((0, 1, 2)).tolist(), "std": unit.std((0, 1, 2)).tolist()}
val, test = torch.from_numpy(normalize(x_val, stats)), torch.from_numpy(normalize(x_test, stats))
pipeline = build_pipeline([t.model_dump() for t in job.augment], seed=job.train.seed)
config = job.train.model_dump()
model = build_model(job.model.name, job.model.params, manifest["shape"], len(manifest["classes"]))
optimizer = make_optimizer(model, config)
schedule = make_schedule(optimizer, config)
loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=job.train.label_smoothing)
for epoch in range(job.train.epochs):
    x = torch.from_numpy(normalize(augment_images(pipeline, x_train), stats))
    model.train()
    for rows in torch.randperm(len(x)).split(job.train.batch_size):
        loss = loss_fn(model(x[rows]), y_train[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    schedule.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(val).argmax(1) == y_val).float().mean().item()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    print(f"epoch {epoch + 1}/{job.train.epochs} val acc {accuracy:.4f}", flush=True)
with torch.no_grad():
    predicted = model(test).argmax(1)
print(f"test accuracy {(predicted == y_test).float().mean().item():.4f} macro F1 {f1_score(y_test, predicted, average='macro'):.4f}", flush=True)
"""


def timed(command: list[str]) -> tuple[float, float, str]:
    """(seconds to the end, seconds to the first `epoch 1/` line, the test accuracy line) of a fresh process."""
    start, first, scored = time.perf_counter(), None, ""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        if first is None and line.startswith("epoch 1/"):
            first = time.perf_counter() - start
        scored = line.strip() if line.startswith("test accuracy") else scored
    assert process.wait() == 0 and first is not None and scored, command
    return time.perf_counter() - start, first, scored


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        args = [f"run.storage_path={tmp}/runs", f"data.path={tmp}/digits"]
        subprocess.run([AUGTRAIN, "collect", str(JOB), "--out", f"{tmp}/digits"], check=True, capture_output=True)
        sides = {"augtrain": [AUGTRAIN, "run", str(JOB), *args],
                 "plain": [sys.executable, "-c", PLAIN, str(JOB), f"{tmp}/digits", tmp]}
        walls, firsts, lasts = {side: [] for side in sides}, {side: [] for side in sides}, {}
        for _ in range(REPEATS):
            for side, command in sides.items():
                wall, first, lasts[side] = timed(command)
                walls[side].append(wall)
                firsts[side].append(first)
    ratio, text = paired_ratio(walls["augtrain"], walls["plain"], GOAL)
    median = {side: statistics.median(values) for side, values in walls.items()}
    first = {side: statistics.median(values) for side, values in firsts.items()}
    record("run_end_to_end", f"{text}; augtrain run {median['augtrain']:.1f} s, "
           f"first epoch after {first['augtrain']:.1f} s; plain script {median['plain']:.1f} s, first epoch after "
           f"{first['plain']:.1f} s; medians of {REPEATS} alternating fresh-process runs of the digits job, dataset collected; "
           f"{lasts['augtrain']!r} / {lasts['plain']!r})", GOAL, ratio)


if __name__ == "__main__":
    main()
