"""Issues 18 and 24: `augtrain predict` on a compressed .npz against a plain script doing the same work.

10,000 64x64 RGB images (data_scaling.py's generated digits, repeated) in one `np.savez_compressed` archive, and
the digits job trained on them for 1 epoch (seed CNN at width 4). augtrain: `augtrain predict RUN packed.npz
--out preds.parquet` in a fresh process (in this process, no Ray: 10,000 inputs is its limit for that), which
inflates the compressed array once into a scratch folder and reads batches from the copy. Plain: a fresh
Python process that loads the same bundle, `np.load`s the whole archive, normalizes with the bundle's stats,
scores in batches of 256 on 2 torch threads and writes the same Parquet columns. Alternated REPEATS times;
the row is the median ratio (augtrain / plain) with its spread. Goal: <= 2.0 (issue 24's for small inputs).
"""

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from common import at_most, paired_ratio, record
from data_scaling import OVERRIDES, scaled_digits
from predict_small import AUGTRAIN, ROOT, timed

INPUTS, REPEATS = 10_000, 3
GOAL = at_most(2.0)
PLAIN = """
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq, torch
from augtrain.artifacts.bundle import load_bundle
torch.set_num_threads(2)
bundle = load_bundle(sys.argv[1])
with np.load(sys.argv[2]) as archive:
    x, y = archive["x"], archive["y"]
x = (x.astype(np.float32) / 255 - np.asarray(bundle.stats["mean"], np.float32)) / np.asarray(bundle.stats["std"], np.float32)
x = x.transpose(0, 3, 1, 2)
with torch.no_grad():
    p = torch.cat([torch.softmax(bundle.model(torch.from_numpy(np.ascontiguousarray(b))), 1) for b in np.array_split(x, -(-len(x) // 256))]).numpy()
classes = np.asarray(bundle.classes, dtype=object)
pq.write_table(pa.table({"id": [f"packed.npz[{i}]" for i in range(len(x))], "label": [str(v) for v in y],
    "predicted": classes[p.argmax(1)], "probability": p.max(1), **{f"p_{c}": p[:, i] for i, c in enumerate(bundle.classes)}}), sys.argv[3])
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scaled_digits(1, tmp / "train.npz")
        run = subprocess.run([AUGTRAIN, "run", str(ROOT / "jobs" / "digits_cnn.yaml"), f"data.source={tmp / 'train.npz'}",
                              f"data.path={tmp}/digits", f"run.storage_path={tmp}/runs", *OVERRIDES, "train.epochs=1"],
                             check=True, capture_output=True, text=True)
        run_dir = Path(next(line for line in run.stdout.splitlines() if line.startswith("run dir: "))[9:])
        with np.load(tmp / "train.npz") as archive:
            rows = np.arange(INPUTS) % len(archive["y"])
            np.savez_compressed(tmp / "packed.npz", x=archive["x"][rows], y=archive["y"][rows])
        walls = {"augtrain": [], "plain": []}
        for _ in range(REPEATS):
            walls["augtrain"].append(timed([AUGTRAIN, "predict", str(run_dir), str(tmp / "packed.npz"), "--out",
                                            str(tmp / "ours.parquet")]))
            walls["plain"].append(timed([sys.executable, "-c", PLAIN, str(run_dir / "model"), str(tmp / "packed.npz"),
                                         str(tmp / "plain.parquet")]))
        ours, plain = (pq.read_table(tmp / f"{side}.parquet").to_pydict() for side in ("ours", "plain"))
        packed = (tmp / "packed.npz").stat().st_size
    agree = sum(a == b for a, b in zip(ours["predicted"], plain["predicted"]))
    assert len(ours["id"]) == len(plain["id"]) == INPUTS and ours["id"] == plain["id"] and agree == INPUTS, agree
    accuracy = sum(a == b for a, b in zip(ours["predicted"], ours["label"])) / INPUTS
    ratio, text = paired_ratio(walls["augtrain"], walls["plain"], GOAL)
    record("predict_npz", f"{text}; augtrain predict {statistics.median(walls['augtrain']):.1f} s vs plain script "
           f"{statistics.median(walls['plain']):.1f} s, medians of {REPEATS} alternating fresh-process runs; {INPUTS} "
           f"64x64 RGB images in a compressed .npz of {packed / 1e6:.0f} MB ({INPUTS * 64 * 64 * 3 / 1e6:.0f} MB "
           f"inflated), same predictions, accuracy {accuracy:.4f}; {json.dumps(sorted(walls['augtrain']))} / "
           f"{json.dumps(sorted(walls['plain']))} s)", GOAL, ratio)


if __name__ == "__main__":
    main()
