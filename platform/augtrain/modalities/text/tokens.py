"""Tokenization with Hugging Face `tokenizers`: trained on the train split's texts (word level, WordPiece or
BPE, as data.text chooses), kept as its JSON in the run's normalization.json and the model bundle, and
applied by the data workers, so predict, export and serving tokenize exactly as training did."""

from __future__ import annotations

import functools
from typing import Iterable

import numpy as np

from augtrain.config.spec import TextSettings

PAD, UNK = "[PAD]", "[UNK]"  # ids 0 and 1: the models embed id 0 as padding


def train_tokenizer(texts: Iterable[str], settings: TextSettings) -> str:
    """A tokenizer trained on `texts` (an iterator: never held whole), as its JSON."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    model, trainer = {
        "word": (models.WordLevel, trainers.WordLevelTrainer),
        "wordpiece": (models.WordPiece, trainers.WordPieceTrainer),
        "bpe": (models.BPE, trainers.BpeTrainer),
    }[settings.tokenizer]
    tokenizer = Tokenizer(model(unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), *([normalizers.Lowercase()] if settings.lowercase else [])])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()  # words and punctuation apart
    # subword trainers keep every character they meet, however many (a CJK or emoji corpus: thousands, more
    # ids than the model embeds); a quarter of the vocabulary at most is single characters, the rest UNK
    alphabet = {} if settings.tokenizer == "word" else {"limit_alphabet": settings.vocab_size // 4}
    tokenizer.train_from_iterator(texts, trainer(vocab_size=settings.vocab_size, min_frequency=settings.min_frequency,
                                                 special_tokens=[PAD, UNK], show_progress=False, **alphabet))
    return tokenizer.to_str()


def _from_json(tokenizer_json: str):
    """The tokenizer of a JSON, reading "[PAD]" or "[UNK]" in a text as text: a text that holds "[PAD]"
    never puts the padding id among its words."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.encode_special_tokens = True
    return tokenizer


@functools.lru_cache(maxsize=4)
def loaded(tokenizer_json: str, max_length: int):
    """The tokenizer of a JSON (once per process), cutting and padding to `max_length` ids."""
    tokenizer = _from_json(tokenizer_json)
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(length=max_length, pad_id=0, pad_token=PAD)
    return tokenizer


def encode(texts: list[str], tokenizer_json: str, max_length: int) -> np.ndarray:
    """Texts -> (N, max_length) float32 token ids (the dtype every model input travels in), 0 = padding."""
    encodings = loaded(tokenizer_json, max_length).encode_batch(texts)
    return np.array([e.ids for e in encodings], dtype=np.float32).reshape(len(texts), max_length)


def token_counts(batches: Iterable[list[str]], tokenizer_json: str) -> list[int]:
    """How many tokens each text of `batches` has before it is cut to max_length."""
    tokenizer = _from_json(tokenizer_json)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return [len(e.ids) for texts in batches for e in tokenizer.encode_batch(texts)]


def tokenizer_problem(stats, vocab_size: int) -> str | None:
    """What is wrong with normalization.json of a text model (from anyone), if anything."""
    if not isinstance(stats, dict) or set(stats) != {"tokenizer"} or not isinstance(stats["tokenizer"], str):
        return 'normalization.json: expected {"tokenizer": the tokenizer\'s JSON text}'
    try:
        tokenizer = loaded(stats["tokenizer"], 1)
    except Exception as exc:  # tokenizers raises its own exception types for any malformed JSON
        return f"normalization.json: not a tokenizer: {str(exc)[:200]}"
    if tokenizer.token_to_id(PAD) != 0 or tokenizer.token_to_id(UNK) != 1:
        return f"normalization.json: the tokenizer must have {PAD} as id 0 and {UNK} as id 1"
    if tokenizer.get_vocab_size() > vocab_size:
        return f"normalization.json: {tokenizer.get_vocab_size()} tokens, more than the model embeds ({vocab_size})"
    return None
