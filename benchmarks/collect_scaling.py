"""Issue 18: `augtrain collect` of a real JPEG folder at 1x, 4x and 16x, against the loop collect was.

The images are seeded random crops (each side 160-320 px) of scikit-learn's two sample photographs,
saved as JPEG (quality 90) in 4 classes (china/flower x left/right half), made once under
data/collect_scaling/ (git-ignored; a larger set hard-links a smaller one's files). 1x is 1,800
images; 16x is 28,800, which collected at 224x224 RGB hold 4.34 GB (4.04 GiB) of decoded pixels.
augtrain collect runs as a fresh process with its own embedded Ray, its object store capped at 1 GiB
by RAY_OVERRIDE_RESOURCES (Ray's ResourceAndLabelSpec lets it override even ray.init's
object_store_memory); the cap in force is read back from the raylet's command line. The baseline is
the single-process loop collect was before Ray Data (run here with --baseline): read every header,
then decode, resize and write Parquet shards of at most 16 MiB (with collect's writer settings: only the
labels dictionary-encoded). The two alternate, 3 repetitions per
scale, each into a fresh output folder. Wall times come from runs that nothing watches; memory from
a second run of each (collect's at every scale, the baseline's at the last), while this script samples
the proportional set size (PSS) of the process and all its descendants every 0.25 s. (That sampling
took 8 % of a CPU beside collect's 20 processes: the same runs timed would take it from collect's two
busy CPUs, not from the baseline's one.)
- memory: collect's median peak PSS at 16x / at 1x (goal <= 1.25: it streams past the object store)
- linear: collect's median wall times against the least-squares line a + b*k; the worst deviation
  relative to the time itself (goal <= 0.15)
- throughput: collect's images/s / the baseline's at scale, from the slopes of both sides' fitted
  lines of wall time against size (what each added image costs; goal >= 1.6)
- end to end: the baseline's wall time / collect's at 16x, whole commands including Ray's start-up,
  the median over the paired repetitions (same goal, reported beside it)
--quick: 1x and 2x of 100 images, once each, and no RESULTS.md rows.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from common import at_least, at_most, measured, process_tree, record
from PIL import Image

CACHE = Path(__file__).resolve().parents[1] / "data" / "collect_scaling"
CLASSES = ["china-left", "china-right", "flower-left", "flower-right"]
SIZE = (224, 224)  # (W, H) of data.resize
SAMPLE_BYTES = SIZE[0] * SIZE[1] * 3
SHARD_BYTES = 16 * 2**20  # what collect's BYTES_PER_SHARD was
OBJECT_STORE = 2**30
MEMORY, LINEAR, FASTER = at_most(1.25), at_most(0.15), at_least(1.6)


def image_folder(per_class: int) -> Path:
    """CACHE/<per_class>-per-class: hard links to the first `per_class` crops of each class in CACHE/pool,
    where crop n of a class is made once from seed (class, n)."""
    folder = CACHE / f"{per_class}-per-class"
    if folder.exists():
        return folder
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images  # china.jpg, flower.jpg: 427x640 RGB
    staging = CACHE / f".{folder.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    for c, name in enumerate(CLASSES):
        (CACHE / "pool" / name).mkdir(parents=True, exist_ok=True)
        (staging / name).mkdir(parents=True)
        for n in range(per_class):
            file = CACHE / "pool" / name / f"{n:05d}.jpg"
            if not file.exists():
                rng = np.random.default_rng([c, n])
                photo, half = photos[c // 2], c % 2
                width, height = (int(side) for side in rng.integers(160, 321, size=2))
                left = half * 320 + int(rng.integers(0, 320 - width + 1))
                top = int(rng.integers(0, photo.shape[0] - height + 1))
                part = file.with_suffix(".part")
                Image.fromarray(photo[top : top + height, left : left + width]).save(part, "JPEG", quality=90)
                part.rename(file)
            os.link(file, staging / name / file.name)
    staging.rename(folder)
    return folder


def baseline(images: Path, out: Path) -> None:
    """The loop: list the files, read every header, then decode, resize and write shards of <= 16 MiB."""
    files = sorted(images.glob("*/*.jpg"))

    def header(file: Path) -> str:
        with Image.open(file) as image:
            return f"{image.mode} {image.size[0]}x{image.size[1]}"

    headers = [header(file) for file in files]
    index = {name: i for i, name in enumerate(sorted({file.parent.name for file in files}))}

    def decode(file: Path) -> bytes:
        with Image.open(file) as image:
            image = image.convert("RGB")
            if image.size != SIZE:
                image = image.resize(SIZE, Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8).tobytes()

    out.mkdir(parents=True)
    per_shard = SHARD_BYTES // SAMPLE_BYTES
    for shard, start in enumerate(range(0, len(files), per_shard)):
        chunk = files[start : start + per_shard]
        table = pa.table({
            "id": pa.array([str(file.relative_to(images)) for file in chunk], pa.string()),
            "x": pa.array([decode(file) for file in chunk], pa.binary()),
            "y": pa.array([index[file.parent.name] for file in chunk], pa.int64()),
        })
        pq.write_table(table, out / f"part-{shard:05d}.parquet", use_dictionary=["y"])  # collect's writer settings
    print(f"baseline: {len(files)} images ({len(set(headers))} mode/size pairs) into {shard + 1} shards in {out}")


def object_store(root: int) -> int | None:
    """The --object_store_memory a raylet below `root` was started with (None: no raylet)."""
    for pid in process_tree(root):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for arg in args:
            if arg.startswith(b"--object_store_memory="):
                return int(arg.split(b"=", 1)[1])
    return None


def timed(side: str, images: Path, work: Path, sampled: bool) -> tuple[float, int, int | None]:
    """(wall seconds, peak PSS bytes of the process tree, object store bytes) of one fresh process; not
    `sampled`: the wall time alone, nothing watching the process."""
    env = {**os.environ, "RAY_OVERRIDE_RESOURCES": json.dumps({"object_store_memory": OBJECT_STORE})}
    env.pop("RAY_ADDRESS", None)  # an embedded Ray, never a cluster someone else runs
    if side == "augtrain":
        job = work / "job.yaml"  # JSON is YAML; collect reads only the data section
        job.write_text(json.dumps({"data": {"source": str(images), "path": str(work / "out"),
                                            "resize": list(SIZE), "channels": 3}}))
        command = [sys.executable, "-m", "augtrain.cli", "collect", str(job)]
    else:
        command = [sys.executable, __file__, "--baseline", str(images), str(work / "out")]
    log = work / "log.txt"
    with log.open("wb") as output:
        wall, code, peak, store = measured(command, output, env, object_store, sampled)
    if code:
        sys.exit(f"{' '.join(command)} exited {code}:\n{log.read_text(errors='replace')[-4000:]}")
    return wall, peak, store


def spread(values: list[float], unit: str) -> str:
    return f"{np.median(values):.1f}{unit} [{min(values):.1f}-{max(values):.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1x and 2x of 100 images, once each; no rows")
    parser.add_argument("--baseline", nargs=2, type=Path, metavar=("IMAGES", "OUT"), help="run the baseline loop")
    args = parser.parse_args()
    if args.baseline:
        return baseline(*args.baseline)
    per_class, scales, repeats = (25, [1, 2], 1) if args.quick else (450, [1, 4, 16], 3)
    runs = {k: {"augtrain": [], "baseline": []} for k in scales}
    for k in scales:
        images = image_folder(per_class * k)
        for repeat in range(repeats):
            for side in ["augtrain", "baseline"][:: 1 if repeat % 2 == 0 else -1]:  # alternating, ABBA
                # the wall time from a run nothing watches, the memory from another run, sampled (collect's
                # at every scale, the baseline's at the last)
                with tempfile.TemporaryDirectory(prefix="collect_scaling-") as work:
                    wall = timed(side, images, Path(work), sampled=False)[0]
                peak, store = 0, None
                if side == "augtrain" or k == scales[-1]:
                    with tempfile.TemporaryDirectory(prefix="collect_scaling-") as work:
                        peak, store = timed(side, images, Path(work), sampled=True)[1:]
                runs[k][side].append((wall, peak, store))
                cap = f", object store {store / 2**30:.2f} GiB" if store else ""
                memory = f", peak PSS {peak / 2**20:6.0f} MiB{cap}" if peak else ""
                print(f"{k:2d}x {side:8s} #{repeat + 1}: {wall:6.1f} s{memory}", flush=True)

    last, n_last = scales[-1], per_class * scales[-1] * len(CLASSES)
    walls = {k: [run[0] for run in runs[k]["augtrain"]] for k in scales}
    peaks = {k: [run[1] / 2**20 for run in runs[k]["augtrain"]] for k in scales}
    stores = {run[2] for k in scales for run in runs[k]["augtrain"]}
    seen = ", ".join(f"{s / 2**30:.2f} GiB" if s else "no raylet" for s in stores)
    setup = (f"augtrain collect (embedded Ray, {os.cpu_count()} CPUs, object store capped at "
             f"{OBJECT_STORE / 2**30:.0f} GiB, seen: {seen}) vs the baseline (1 process, 1 CPU); "
             f"{per_class * len(CLASSES)} JPEGs at 1x, {n_last} at {last}x = {n_last * SAMPLE_BYTES / 1e9:.2f} GB "
             f"decoded at 224x224x3; {repeats} alternating repetitions per scale, wall times unwatched, median [min-max]")
    def quick(name: str, result: str, goal, value: float) -> None:
        print("QUICK", name, result, goal, "PASS" if goal.met(value) else "FAIL")

    emit = quick if args.quick else record

    memory = np.median(peaks[last]) / np.median(peaks[scales[0]])
    mibs = ", ".join(f"{k}x {spread(peaks[k], ' MiB')}" for k in scales)
    base_peak = spread([run[1] / 2**20 for run in runs[last]["baseline"]], " MiB")
    emit("collect_scaling_memory", f"ratio={memory:.2f} (collect peak PSS: {mibs}; baseline at {last}x: {base_peak}; "
         f"{setup})", MEMORY, memory)

    medians = [float(np.median(walls[k])) for k in scales]
    slope, intercept = np.polyfit(scales, medians, 1)
    deviation = max(abs(w - (intercept + slope * k)) / w for k, w in zip(scales, medians))
    times = ", ".join(f"{k}x {spread(walls[k], ' s')}" for k in scales)
    emit("collect_scaling_linear", f"deviation={deviation:.2f} (collect wall: {times}; fit {intercept:.1f} s + "
         f"{slope:.2f} s per 1x; {setup})", LINEAR, deviation)

    base_walls = [run[0] for run in runs[last]["baseline"]]
    speedup = float(np.median([b / a for a, b in zip(walls[last], base_walls)]))
    rates = [n_last / np.median(w) for w in (walls[last], base_walls)]
    emit("collect_scaling_end_to_end", f"ratio={speedup:.2f} (whole commands at {last}x, Ray's start included: "
         f"collect {rates[0]:.0f} img/s, {spread(walls[last], ' s')}; baseline {rates[1]:.0f} img/s, "
         f"{spread(base_walls, ' s')}; {setup})", FASTER, speedup)

    # throughput at scale: images per second of each added image, the slopes of both sides' fitted lines
    base_slope = np.polyfit(scales, [float(np.median([r[0] for r in runs[k]["baseline"]])) for k in scales], 1)[0]
    marginal = base_slope / slope
    per_image = per_class * len(CLASSES)
    emit("collect_scaling_throughput", f"ratio={marginal:.2f} (images/s at scale, from the slopes of wall time "
         f"against size 1x-{last}x: collect {per_image / slope:.0f} img/s ({slope:.2f} s per 1x, start-up "
         f"{intercept:.1f} s), baseline {per_image / base_slope:.0f} img/s ({base_slope:.2f} s per 1x); {setup})",
         FASTER, marginal)

if __name__ == "__main__":
    main()
