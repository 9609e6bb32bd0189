"""Texts the tests generate: short English reviews, positive or negative by the words they use, each
built from its own choice of subject, verb, adverb, judgement and ending, so a model has to learn the
judgement words rather than one sentence."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SUBJECTS = ("the movie", "this film", "the plot", "the acting", "the story", "the ending", "the cast", "the script",
            "the soundtrack", "the director's work")
VERBS = ("was", "is", "felt", "seemed", "turned out")
ADVERBS = ("", "really", "quite", "truly", "rather", "very", "so")
JUDGEMENTS = {
    "pos": ("great", "wonderful", "moving", "brilliant", "funny", "charming", "excellent", "delightful", "superb"),
    "neg": ("boring", "awful", "dull", "terrible", "clumsy", "tedious", "bland", "weak", "dreadful"),
}
ENDINGS = ("", "from start to finish", "in every scene", "overall", "and I would say so again", "to me",
           "for most of its length")


def review(label: str, rng: np.random.Generator) -> str:
    words = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(ADVERBS), rng.choice(JUDGEMENTS[label]),
             rng.choice(ENDINGS)]
    text = " ".join(w for w in words if w)
    return text[0].upper() + text[1:] + rng.choice([".", "!", "..."])


def reviews(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n` (text, label) pairs, the labels alternating."""
    rng = np.random.default_rng(seed)
    return [(review(label, rng), label) for label in ("pos", "neg") * (n // 2)]


def write_csv(path: Path, rows: list[tuple[str, str]], encoding: str = "utf-8") -> Path:
    """A table with columns text and label."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding=encoding) as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def write_folder(root: Path, rows: list[tuple[str, str]]) -> Path:
    """One .txt file per text in a sub-folder per label."""
    for i, (text, label) in enumerate(rows):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{i:04d}.txt").write_text(text + "\n", encoding="utf-8")
    return root
