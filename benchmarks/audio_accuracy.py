"""FSDD test accuracy of the audio jobs over several seeds, with and without augmentation side by side.

The Free Spoken Digit Dataset (3,000 recordings, 6 speakers) on its conventional split: recordings
0-4 of each digit and speaker are the test set (300), the rest train and validation. Goal (issue 19):
jobs/fsdd_cnn.yaml >= 97 % mean test accuracy over 3 seeds (a CNN on MFCCs is published at ~97 %).
The same job without augmentation and the GRU job are reported beside it, and both CNN variants with
one speaker held out as the test set (a voice never heard in training). Needs the recordings:

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
from common import at_least, record
from fsdd import RECORDINGS, prepare

JOBS = Path(__file__).resolve().parents[1] / "jobs"
UNSEEN = "lucas"  # a speaker held out whole: augmentation's effect on a voice never heard in training
CASES = [  # (name, job file, overrides, goal, the speaker held out as the test set or None)
    ("fsdd_cnn_augmented", "fsdd_cnn.yaml", [], 0.97, None),
    ("fsdd_cnn_plain", "fsdd_cnn.yaml", ["augment=[]"], None, None),
    ("fsdd_gru_augmented", "fsdd_gru.yaml", [], None, None),
    ("fsdd_cnn_unseen_speaker_augmented", "fsdd_cnn.yaml", [], None, UNSEEN),
    ("fsdd_cnn_unseen_speaker_plain", "fsdd_cnn.yaml", ["augment=[]"], None, UNSEEN),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fsdd", type=Path, default=RECORDINGS)
    parser.add_argument("seeds", nargs="?", type=int, default=3)
    parser.add_argument("cases", nargs="*")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="augtrain-fsdd-"))
    for name, job_file, overrides, goal, speaker in CASES:
        if args.cases and name not in args.cases:
            continue
        table = prepare(args.fsdd, work / f"fsdd-{speaker or 'conventional'}", speaker)
        scores = []
        for seed in range(args.seeds):
            extra = [f"data.source={table}", f"data.path={work / name}", f"run.storage_path={work / 'runs'}",
                     f"train.seed={seed}"]
            run_dir = run_job(load_job(JOBS / job_file, [*overrides, *extra]), echo=lambda line: None)
            scores.append(json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"])
            print(f"{name} seed {seed}: {scores[-1]:.4f}", flush=True)
        mean = statistics.mean(scores)
        tested = f"the 500 recordings of {speaker}, trained on the other 5 speakers" if speaker else "300 test recordings"
        result = f"mean={mean:.4f} seeds=[{', '.join(f'{s:.4f}' for s in scores)}] ({tested})"
        record(name, result, goal and at_least(goal), mean)


if __name__ == "__main__":
    main()
