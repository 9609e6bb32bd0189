"""Issues 7 and 23: collect + train wall time and peak memory as the data grows from 1x to 16x, with enough
data that the largest size dominates start-up.

Scale k is an .npz of 2k seeded copies of scikit-learn's 1,797 digits, each drawn at 64x64 RGB (8x nearest
upscaling, a seeded tint per copy) and put through the main job's Affine (seeded per copy): 3,594 images
(44 MB decoded) at 1x, 57,504 (707 MB) at 16x. Each scale runs `augtrain run jobs/digits_cnn.yaml` (collect
into a fresh folder, then 2 epochs of the seed CNN at width 4, whose compute per byte is small enough that
the data path, not the model, sets the pace) as a fresh process with its own embedded Ray, while this script
samples the proportional set size (PSS: shared object-store pages split among the processes that map them) of
that process and all its descendants every 0.25 s. REPEATS repetitions, the scales in alternating order
(1x to 16x, then back), the median of each scale's repetitions used below.
- linear: wall time against the least-squares line a + b*k through all scales; the worst deviation
  relative to the time itself (goal <= 0.15)
- memory: (peak PSS at 16x - at 1x) / (decoded bytes at 16x - at 1x), the share of the added data held
  at once (goal <= 0.5: holding the data once, as uint8, would be 1.0)
"""

import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from augtrain.config.spec import load_job
from augtrain.modalities.image.augment import build_pipeline
from common import at_most, measured, record
from sklearn.datasets import load_digits

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "jobs" / "digits_cnn.yaml"
SCALES = [1, 2, 4, 8, 16]
COPIES_PER_SCALE = 2  # copies of the digits in 1x
SIDE = 64  # pixels: 8x the digits' 8
EPOCHS = 2
REPEATS = 3
OVERRIDES = [f"train.epochs={EPOCHS}", "model.params={width: 4, dropout: 0.2}"]
LINEAR, MEMORY = at_most(0.15), at_most(0.5)


def scaled_digits(k: int, path: Path) -> int:
    """Write scale k's .npz (uint8 (N, 64, 64, 3) images, int labels); return its decoded bytes."""
    digits = load_digits()
    grey = np.kron(np.round(digits.images * (255 / 16)), np.ones((SIDE // 8, SIDE // 8)))[..., None]
    transforms = [t.model_dump() for t in load_job(JOB).augment]
    copies = []
    for copy in range(COPIES_PER_SCALE * k):
        tint = np.random.default_rng(copy).uniform(0.5, 1.0, size=3)
        images = np.round(grey * tint).astype(np.uint8)
        pipeline = build_pipeline(transforms, seed=copy)
        copies.append(np.stack([pipeline(image=image)["image"].reshape(image.shape) for image in images]))
    x = np.concatenate(copies)
    np.savez(path, x=x, y=np.tile(digits.target, COPIES_PER_SCALE * k))
    return x.nbytes


def timed_run(data: Path, work: Path) -> tuple[float, int]:
    """(wall seconds, peak PSS bytes) of `augtrain run` on `data` with its own Ray, collecting afresh."""
    command = [sys.executable, "-m", "augtrain.cli", "run", str(JOB), f"data.source={data}",
               f"data.path={work / 'collected'}", f"run.storage_path={work / 'runs'}", *OVERRIDES]
    with (work / "run.log").open("w") as log:
        wall, code, peak, _ = measured(command, log)
    assert code == 0, f"augtrain run failed on {data}: see {work / 'run.log'}\n" + (work / "run.log").read_text()[-2000:]
    return wall, peak


def main() -> None:
    walls = {k: [] for k in SCALES}
    peaks = {k: [] for k in SCALES}
    with tempfile.TemporaryDirectory() as tmp:
        sources = {k: Path(tmp) / f"digits_x{k}.npz" for k in SCALES}
        sizes = {k: scaled_digits(k, sources[k]) for k in SCALES}
        for repeat in range(REPEATS):
            for k in SCALES if repeat % 2 == 0 else SCALES[::-1]:
                with tempfile.TemporaryDirectory(dir=tmp) as work:
                    wall, peak = timed_run(sources[k], Path(work))
                walls[k].append(wall)
                peaks[k].append(peak)
                print(f"#{repeat + 1} {k:2d}x ({sizes[k] / 2**20:.0f} MiB): {wall:6.1f} s, peak {peak / 2**20:6.0f} MiB",
                      flush=True)
    wall = {k: statistics.median(walls[k]) for k in SCALES}
    peak = {k: statistics.median(peaks[k]) for k in SCALES}
    slope, intercept = np.polyfit(SCALES, [wall[k] for k in SCALES], 1)
    deviation = max(abs(wall[k] - (intercept + slope * k)) / wall[k] for k in SCALES)
    setup = (f"{REPEATS} repetitions in alternating order, medians; {sizes[1] / 2**20:.0f} MiB to "
             f"{sizes[16] / 2**20:.0f} MiB of 64x64 RGB uint8 images, collect + {EPOCHS} epochs of the seed CNN at "
             "width 4, one worker in the run's process, a fresh process and embedded Ray per run")
    times = ", ".join(f"{k}x {wall[k]:.1f} s [{min(walls[k]):.1f}-{max(walls[k]):.1f}]" for k in SCALES)
    record("data_scaling_linear", f"deviation={deviation:.2f} ({times}; fit {intercept:.1f} s + {slope:.2f} s per 1x, "
           f"so the data is {slope * 16 / (intercept + slope * 16):.0%} of the 16x run; {setup})", LINEAR, deviation)
    growth = (peak[16] - peak[1]) / (sizes[16] - sizes[1])
    mibs = ", ".join(f"{k}x {peak[k] / 2**20:.0f} [{min(peaks[k]) / 2**20:.0f}-{max(peaks[k]) / 2**20:.0f}]"
                     for k in SCALES)
    record("data_scaling_memory", f"held={growth:.2f} of the added data's decoded bytes (peak PSS MiB: {mibs}; "
           f"{setup})", MEMORY, growth)


if __name__ == "__main__":
    main()
