"""The Free Spoken Digit Dataset as augtrain reads it: its recordings copied under data/fsdd/ with a table
(file, label, speaker, split) on the conventional split: recordings 0-4 of each digit and speaker are
the test set, the rest train and validation.

    python benchmarks/fsdd.py PATH/TO/free-spoken-digit-dataset/recordings
    augtrain run jobs/fsdd_cnn.yaml
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
from pathlib import Path

NAME = re.compile(r"(\d)_([a-z]+)_(\d+)\.wav")
TEST_INDEXES = range(5)
RECORDINGS = Path(__file__).resolve().parents[2] / "shared/datasets/fsdd/recordings"  # the team's copy beside the checkout


def prepare(recordings: Path, out: Path, test_speaker: str | None = None) -> Path:
    """Copy the recordings into out/recordings/ and write out/recordings.csv; the table's path. With
    `test_speaker` the test split is every recording of that speaker instead (a voice never heard in
    training)."""
    (out / "recordings").mkdir(parents=True, exist_ok=True)
    rows = []
    for path in sorted(recordings.glob("*.wav")):
        match = NAME.fullmatch(path.name)
        if match is None:
            continue
        digit, speaker, index = match.groups()
        target = out / "recordings" / path.name
        if not target.exists():
            shutil.copyfile(path, target)
        test = speaker == test_speaker if test_speaker else int(index) in TEST_INDEXES
        rows.append([f"recordings/{path.name}", digit, speaker, "test" if test else ""])
    if not rows:
        raise SystemExit(f"{recordings}: no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav)")
    table = out / "recordings.csv"
    with table.open("w", newline="") as file:
        csv.writer(file).writerows([["file", "label", "speaker", "split"], *rows])
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recordings", type=Path)
    parser.add_argument("--out", type=Path, default=Path("data/fsdd"))
    args = parser.parse_args()
    print(prepare(args.recordings, args.out))
