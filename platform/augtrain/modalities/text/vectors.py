"""The rows a text model's embedding starts from: word vectors from a file (GloVe's or word2vec's text format),
or another run's embedding, each row following its token into this run's vocabulary. Tokens without a row
keep their random initialisation (Kim 2014's "CNN-non-static": the vectors go on training)."""

from __future__ import annotations

import io
from typing import Callable

import numpy as np
import torch

from augtrain.datasets.files import open_source

EMBEDDING = "embedding.weight"  # TextClassifier's embedding, as its state dict names it


def vocabulary(stats: dict) -> dict[str, int]:
    """{token: id} of a run's tokenizer (its normalization.json)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(stats["tokenizer"]).get_vocab()


def file_rows(location: str, vocab: dict[str, int], rows: torch.Tensor, lowercase: bool,
              echo: Callable[[str], None]) -> torch.Tensor:
    """`rows` with the vectors of `location` for the tokens of `vocab` (a word's first vector wins; with a
    lowercasing tokenizer a cased word stands in for its lower case). Streamed a line at a time: only the
    vocabulary's rows are kept, however large the file. ValueError names the file and line of a bad one."""
    rows, size, found = rows.clone(), rows.shape[1], set()
    with open_source(location) as raw:
        for number, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8", errors="replace"), 1):
            fields = line.rstrip("\r\n").rstrip(" ").split(" ")
            if number == 1:  # word2vec's header (word count, dimensions) or the first word's vector
                header = len(fields) == 2 and all(f.isdigit() for f in fields)
                dimensions = int(fields[1]) if header else trailing_numbers(fields)
                if dimensions != size:
                    raise ValueError(f"{location}:1: vectors of {dimensions} numbers; the embedding has {size}")
                if header:
                    continue
            if len(fields) < size + 1:
                raise ValueError(f"{location}:{number}: {len(fields) - 1} numbers after the word; the embedding has {size}")
            word = " ".join(fields[:-size])  # a few GloVe words hold spaces
            token = vocab.get(word)
            if token is None and lowercase:
                token = vocab.get(word.lower())
            if token is None or token in found:
                continue
            try:
                vector = np.array(fields[-size:], dtype=np.float32)
            except ValueError:
                raise ValueError(f"{location}:{number}: not {size} numbers after the word {word[:40]!r}") from None
            if not np.isfinite(vector).all():
                raise ValueError(f"{location}:{number}: the vector of {word[:40]!r} is not finite")
            rows[token] = torch.from_numpy(vector)
            found.add(token)
    echo(f"model.vectors: {len(found):,} of {len(vocab):,} tokens start from {location}'s vectors; "
         "the rest from random ones")
    return rows


def trailing_numbers(fields: list[str]) -> int:
    """How many of a line's last fields are numbers, the first field (a word, even "1990") left out."""
    count = 0
    for field in reversed(fields[1:]):
        try:
            float(field)
        except ValueError:
            break
        count += 1
    return count


def carried_rows(theirs: torch.Tensor, their_vocab: dict[str, int], vocab: dict[str, int],
                 rows: torch.Tensor) -> torch.Tensor:
    """`rows` where each token of `vocab` that `their_vocab` holds takes its row of `theirs`."""
    rows = rows.clone()
    for token, i in vocab.items():
        j = their_vocab.get(token)
        if j is not None and j < len(theirs):
            rows[i] = theirs[j]
    return rows
