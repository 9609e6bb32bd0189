"""MR and TREC (Kim 2014's sentence-classification files) as a new user would bring them to augtrain:
converted to CSV tables (text, label[, split]) under data/. The files hold one `LABEL sentence` per
line in Latin-1; the tables are written in UTF-8.

    python benchmarks/text_corpora.py [FOLDER]   (default: the team's copy beside the checkout)
    augtrain run jobs/mr_cnn.yaml; augtrain run jobs/trec_cnn.yaml
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

FOLDER = Path(__file__).resolve().parents[2] / "shared/datasets/text"
MR_LABELS = {"0": "negative", "1": "positive"}
TREC_LABELS = {"0": "description", "1": "entity", "2": "abbreviation", "3": "human", "4": "location", "5": "number"}


def lines(path: Path) -> list[tuple[str, str]]:
    """(label, sentence) of each non-blank line."""
    pairs = []
    for line in path.read_text(encoding="latin-1").split("\n"):  # not splitlines: Latin-1 text holds \x85
        label, _, sentence = line.strip().partition(" ")
        if sentence:
            pairs.append((label, sentence))
    return pairs


def write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([header, *rows])
    return path


def prepare(folder: Path = FOLDER, out: Path = Path("data")) -> tuple[Path, Path]:
    """data/mr/mr.csv (text, label) and data/trec/trec.csv (text, label, split: TREC's own test set)."""
    if not (folder / "rt-polarity.all").is_file():
        raise SystemExit(f"{folder}: no rt-polarity.all (the MR and TREC files of Kim 2014)")
    mr = write(out / "mr" / "mr.csv", ["text", "label"], [[s, MR_LABELS[y]] for y, s in lines(folder / "rt-polarity.all")])
    trec = write(out / "trec" / "trec.csv", ["text", "label", "split"],
                 [[s, TREC_LABELS[y], split] for split, name in (("", "TREC.train.all"), ("test", "TREC.test.all"))
                  for y, s in lines(folder / name)])
    return mr, trec


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=FOLDER)
    parser.add_argument("--out", type=Path, default=Path("data"))
    print(*prepare(parser.parse_args().folder, parser.parse_args().out))
