"""Issue 7, goal 6: collect + train wall time and peak memory as the digits data grows from 1x to 16x.

Scale k is an .npz of the 1797 digits plus k-1 augmented copies of them (the main job's Affine, seeded
per copy). Each scale runs `augtrain run jobs/digits_cnn.yaml` (collect, then 3 epochs) as a fresh
process with its own embedded Ray, while this script samples the proportional set size (PSS: shared
object-store pages split among the processes that map them) of that process and all its descendants
(raylet, GCS, workers) every 0.25 s.
- linear: wall time against the least-squares line a + b*k through all scales; the worst deviation
  relative to the time itself (goal <= 0.15)
- memory: peak PSS at 16x / at 1x (goal <= 1.25: the pipeline streams, it does not hold everything)
"""

import subprocess
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


def scaled_digits(k: int, path: Path) -> Path:
    """The digits and k-1 augmented copies, as collect reads them (uint8 images, int labels)."""
    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    transforms = [t.model_dump() for t in load_job(JOB).augment]
    copies = [images]
    for copy in range(1, k):
        pipeline = build_pipeline(transforms, seed=copy)
        copies.append(np.stack([pipeline(image=image)["image"].reshape(image.shape) for image in images]))
    np.savez(path, x=np.concatenate(copies), y=np.tile(digits.target, k))
    return path


def timed_run(data: Path, work: Path) -> tuple[float, int]:
    """(wall seconds, peak PSS bytes) of `augtrain run` on `data` with its own Ray."""
    command = [sys.executable, "-m", "augtrain.cli", "run", str(JOB), f"data.source={data}",
               f"data.path={work / 'collected'}", f"run.storage_path={work / 'runs'}", "train.epochs=3"]
    wall, code, peak, _ = measured(command, subprocess.DEVNULL)
    assert code == 0, f"augtrain run failed on {data}"
    return wall, peak


def main() -> None:
    walls, peaks = [], []
    for k in SCALES:
        with tempfile.TemporaryDirectory() as tmp:
            wall, peak = timed_run(scaled_digits(k, Path(tmp) / f"digits_x{k}.npz"), Path(tmp))
        print(f"{k:2d}x: {wall:6.1f} s, peak {peak / 2**20:6.0f} MiB", flush=True)
        walls.append(wall)
        peaks.append(peak)
    slope, intercept = np.polyfit(SCALES, walls, 1)
    deviation = max(abs(w - (intercept + slope * k)) / w for k, w in zip(SCALES, walls))
    times = ", ".join(f"{k}x {w:.1f} s" for k, w in zip(SCALES, walls))
    record("data_scaling_linear", f"deviation={deviation:.2f} ({times}; fit {intercept:.1f} s + {slope:.2f} s per 1x)",
           at_most(0.15), deviation)
    memory = peaks[-1] / peaks[0]
    mibs = ", ".join(f"{k}x {p / 2**20:.0f}" for k, p in zip(SCALES, peaks))
    record("data_scaling_memory", f"ratio={memory:.2f} (peak PSS MiB: {mibs})", at_most(1.25), memory)


if __name__ == "__main__":
    main()
