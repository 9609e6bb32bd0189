"""Text augmentation: the four EDA operations (Wei and Zou 2019), declared in YAML like image transforms
and applied to the train split's texts by the data workers, fresh every epoch (seeded per batch).

A text is split on whitespace into words; each transform changes about `alpha` of them (at least one),
with probability `p` per text. Synonyms come from WordNet (modalities/text/wordnet.py); stop words
(scikit-learn's English list) are never replaced.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class TextTransform(BaseModel):
    """Applied to each text's words with probability `p`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    p: float = Field(0.5, ge=0, le=1)
    alpha: float = Field(0.1, gt=0, le=1, description="share of a text's words changed")

    def changes(self, words: list[str]) -> int:
        return max(1, round(self.alpha * len(words)))

    def __call__(self, words: list[str], rng: np.random.Generator) -> list[str]:
        raise NotImplementedError


def _replaceable(words: list[str]) -> list[int]:
    """Positions of words that are not stop words."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return [i for i, word in enumerate(words) if word.lower() not in ENGLISH_STOP_WORDS]


class SynonymReplacement(TextTransform):
    """Replace up to alpha x n words (not stop words) with one of their WordNet synonyms."""

    def __call__(self, words, rng):
        from augtrain.modalities.text.wordnet import synonyms

        out, left = list(words), self.changes(words)
        for i in rng.permutation(_replaceable(words)):
            if left == 0:
                break
            choices = synonyms(words[i])
            if choices:
                out[i] = choices[rng.integers(len(choices))]
                left -= 1
        return out


class RandomInsertion(TextTransform):
    """Insert a synonym of a random word (not a stop word) at a random position, alpha x n times."""

    def __call__(self, words, rng):
        from augtrain.modalities.text.wordnet import synonyms

        out = list(words)
        candidates = [choices for choices in map(synonyms, (words[i] for i in _replaceable(words))) if choices]
        if not candidates:
            return out
        for _ in range(self.changes(words)):
            choices = candidates[rng.integers(len(candidates))]
            out.insert(int(rng.integers(len(out) + 1)), choices[rng.integers(len(choices))])
        return out


class RandomSwap(TextTransform):
    """Swap two random words, alpha x n times."""

    def __call__(self, words, rng):
        out = list(words)
        if len(out) > 1:
            for _ in range(self.changes(words)):
                i, j = rng.choice(len(out), 2, replace=False)
                out[i], out[j] = out[j], out[i]
        return out


class RandomDeletion(TextTransform):
    """Delete each word with probability alpha (one word is always kept)."""

    def __call__(self, words, rng):
        kept = [word for word, drop in zip(words, rng.random(len(words)) < self.alpha) if not drop]
        return kept or [words[rng.integers(len(words))]]


TRANSFORMS: dict[str, type[TextTransform]] = {
    t.__name__: t for t in (SynonymReplacement, RandomInsertion, RandomSwap, RandomDeletion)
}


class TextAugmenter:
    """A job's text transforms over a batch of texts; `seed=None` draws fresh entropy."""

    def __init__(self, transforms: list[dict], seed: int | None = None):
        self.transforms = [TRANSFORMS[t["name"]](**{k: v for k, v in t.items() if k != "name"}) for t in transforms]
        self.rng = np.random.default_rng(seed)

    def __call__(self, texts: list[str]) -> list[str]:
        out = []
        for text in texts:
            words, changed = text.split(), False
            for transform in self.transforms:
                if words and self.rng.random() < transform.p:
                    words, changed = transform(words, self.rng), True
            out.append(" ".join(words) if changed else text)  # untouched, a text tokenizes as at predict time
        return out
