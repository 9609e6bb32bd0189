"""Issue 24, goal 5: `augtrain predict` on a small folder against a plain script doing the same work.

4,000 8x8 PNGs (the digits run's test images, repeated) in class folders. augtrain: `augtrain predict RUN
folder --out preds.parquet` in a fresh process. Plain: a fresh Python process that loads the same bundle
(verified, as augtrain loads it), decodes every PNG with Pillow, normalizes with the bundle's stats, scores in
batches of 256 on 2 torch threads and writes the same Parquet columns. Both on this machine's CPUs, alternated,
REPEATS times each; the row is the median ratio (augtrain / plain) with its spread. Goal: <= 2.0.
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from augtrain.datasets.format import decode_samples, read_manifest, split_files
from common import at_most, paired_ratio, record
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
AUGTRAIN = str(Path(sys.executable).with_name("augtrain"))
INPUTS, REPEATS = 4000, 3
GOAL = at_most(2.0)
PLAIN = """
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq, torch
from pathlib import Path
from PIL import Image
from augtrain.artifacts.bundle import load_bundle
torch.set_num_threads(2)
bundle = load_bundle(Path(sys.argv[1]))
files = sorted(Path(sys.argv[2]).rglob("*.png"))
x = np.stack([np.asarray(Image.open(f))[..., None] for f in files]).astype(np.float32) / 255
x = ((x - np.asarray(bundle.stats["mean"], np.float32)) / np.asarray(bundle.stats["std"], np.float32)).transpose(0, 3, 1, 2)
with torch.no_grad():
    p = torch.cat([torch.softmax(bundle.model(torch.from_numpy(np.ascontiguousarray(b))), 1) for b in np.array_split(x, -(-len(x) // 256))]).numpy()
classes = np.asarray(bundle.classes, dtype=object)
pq.write_table(pa.table({"id": [str(f.relative_to(sys.argv[2])) for f in files], "label": [f.parent.name for f in files],
    "predicted": classes[p.argmax(1)], "probability": p.max(1), **{f"p_{c}": p[:, i] for i, c in enumerate(bundle.classes)}}), sys.argv[3])
"""


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = subprocess.run([AUGTRAIN, "run", str(ROOT / "jobs" / "digits_cnn.yaml"), "train.epochs=5",
                              f"run.storage_path={tmp}/runs", f"data.path={tmp}/digits"], check=True, capture_output=True, text=True)
        run_dir = Path(next(line for line in run.stdout.splitlines() if line.startswith("run dir: "))[9:])
        manifest = read_manifest(tmp / "digits")
        table = pq.ParquetDataset(split_files(tmp / "digits", "test")).read()
        images, labels = decode_samples(table.column("x").to_pylist(), manifest), table.column("y").to_pylist()
        for i in range(INPUTS):
            folder = tmp / "images" / manifest["classes"][labels[i % len(labels)]]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i % len(images)][..., 0]).save(folder / f"{i}.png")
        walls = {"augtrain": [], "plain": []}
        for _ in range(REPEATS):
            ours = timed([AUGTRAIN, "predict", str(run_dir), str(tmp / "images"), "--out", str(tmp / "ours.parquet")])
            plain = timed([sys.executable, "-c", PLAIN, str(run_dir / "model"), str(tmp / "images"), str(tmp / "plain.parquet")])
            walls["augtrain"].append(ours)
            walls["plain"].append(plain)
        ours_rows, plain_rows = (pq.read_table(tmp / f"{side}.parquet").sort_by("id") for side in ("ours", "plain"))
        agree = sum(a == b for a, b in zip(ours_rows.column("predicted").to_pylist(), plain_rows.column("predicted").to_pylist()))
        accuracy = sum(r["predicted"] == r["label"] for r in ours_rows.select(["predicted", "label"]).to_pylist()) / ours_rows.num_rows
    assert ours_rows.num_rows == plain_rows.num_rows == INPUTS and agree == INPUTS, (ours_rows.num_rows, agree)
    ratio, text = paired_ratio(walls["augtrain"], walls["plain"], GOAL)
    record("predict_small", f"{text}; augtrain predict "
           f"{statistics.median(walls['augtrain']):.1f} s vs plain script {statistics.median(walls['plain']):.1f} s, medians of "
           f"{REPEATS} alternating fresh-process runs; {INPUTS} 8x8 PNGs, same predictions, accuracy {accuracy:.4f}; "
           f"{json.dumps(sorted(walls['augtrain']))} / {json.dumps(sorted(walls['plain']))} s)", GOAL, ratio)


if __name__ == "__main__":
    main()
