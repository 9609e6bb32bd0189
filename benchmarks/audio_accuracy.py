"""FSDD test accuracy of the audio jobs over several seeds, with and without augmentation side by side.

The Free Spoken Digit Dataset (3,000 recordings, 6 speakers) on its conventional split: recordings
0-4 of each digit and speaker are the test set (300), the rest train and validation. Goal (issue 19):
jobs/fsdd_cnn.yaml >= 97 % mean test accuracy over 3 seeds (a CNN on MFCCs is published at ~97 %).
The same job without augmentation and the GRU job are reported beside it. Needs the recordings:

    cd benchmarks && PYTHONPATH=. python audio_accuracy.py [--fsdd RECORDINGS] [SEEDS [CASE ...]]

(default RECORDINGS: ../../shared/datasets/fsdd/recordings, the team's copy beside the checkout)
"""

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from augtrain.config.spec import load_job
from augtrain.recipes.run import run_job
from common import record
from fsdd import prepare

JOBS = Path(__file__).resolve().parents[1] / "jobs"
CASES = [  # (name, job file, overrides, goal)
    ("fsdd_cnn_augmented", "fsdd_cnn.yaml", [], 0.97),
    ("fsdd_cnn_plain", "fsdd_cnn.yaml", ["augment=[]"], None),
    ("fsdd_gru_augmented", "fsdd_gru.yaml", [], None),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fsdd", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets/fsdd/recordings")
    parser.add_argument("seeds", nargs="?", type=int, default=3)
    parser.add_argument("cases", nargs="*")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="augtrain-fsdd-"))
    table = prepare(args.fsdd, work / "fsdd")
    for name, job_file, overrides, goal in CASES:
        if args.cases and name not in args.cases:
            continue
        scores = []
        for seed in range(args.seeds):
            extra = [f"data.source={table}", f"data.path={work / name}", f"run.storage_path={work / 'runs'}",
                     f"train.seed={seed}"]
            run_dir = run_job(load_job(JOBS / job_file, [*overrides, *extra]), echo=lambda line: None)
            scores.append(json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"])
            print(f"{name} seed {seed}: {scores[-1]:.4f}", flush=True)
        mean = statistics.mean(scores)
        result = f"mean={mean:.4f} seeds=[{', '.join(f'{s:.4f}' for s in scores)}] (300 test recordings)"
        record(name, result, f">={goal}" if goal else "none", None if goal is None else mean >= goal)


if __name__ == "__main__":
    main()
