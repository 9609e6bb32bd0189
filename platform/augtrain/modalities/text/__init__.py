"""Texts: stored as their UTF-8 bytes, zero-padded to data.max_text_bytes ((max_text_bytes,) uint8);
augmented as words (EDA) and tokenized by the data workers with a tokenizer trained on the train split
(the run's normalization.json holds it); modelled as (N, max_length) token ids by an embedding and an
LSTM/GRU or Kim's CNN. A collected dataset records its tokenizer settings (data.text); the modality is
bound to them (`bind`) wherever texts become model input, a bundle included."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from augtrain.modalities.base import Modality, check_declared

if TYPE_CHECKING:
    from augtrain.config.spec import TextSettings


class TextModality(Modality):
    kind = "text"
    model_names = ("text_cnn", "text_lstm", "text_gru")
    transforms_hint = "SynonymReplacement, RandomInsertion, RandomSwap, RandomDeletion"
    thumbnail = (2.4, 0.9)

    def __init__(self, settings: TextSettings | None = None):
        self.settings = settings  # None until bound to a dataset

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.settings == self.settings

    def __hash__(self) -> int:
        return hash((type(self).__qualname__, self.settings))

    # --- collect ---
    def claims(self, data) -> bool:
        from augtrain.datasets.files import first_suffix, is_folder
        from augtrain.modalities.text.read import SUFFIXES

        if data.kind not in (None, self.kind):
            return False
        if data.kind == self.kind or data.text_column:
            return Path(data.source).suffix in {".csv", ".parquet"} or is_folder(data.source)
        return first_suffix(data.source) in SUFFIXES

    def listing(self, data, labelled: bool = True, shape: list[int] | None = None):
        from augtrain.modalities.text.read import listing

        out = listing(data, labelled, shape[0] if shape else data.max_text_bytes)
        out.reader.fields = {"text": data.text.model_dump(mode="json"), "encoding": out.reader.encoding}
        return out

    def bind(self, fields: dict) -> TextModality:
        from pydantic import ValidationError

        from augtrain.config.spec import TextSettings, problems

        if not isinstance(fields.get("text"), dict):
            raise ValueError("text must be an object of tokenizer settings")
        try:
            return TextModality(TextSettings.model_validate(fields["text"]))
        except ValidationError as exc:
            raise ValueError(f"text: {problems(exc)}") from None

    def binding(self, manifest: dict) -> dict:
        return {"text": manifest["text"], "encoding": manifest["encoding"]}

    def _bound(self) -> TextSettings:
        if self.settings is None:
            raise ValueError("texts become model input only with a dataset's tokenizer settings (Modality.bind)")
        return self.settings

    def describe(self, manifest: dict) -> str:
        text = manifest["text"]
        return f"texts of at most {manifest['shape'][0]} bytes -> {text['tokenizer']} tokens, {text['max_length']} per text"

    def decode_input(self, value, data, shape: list[int]):
        from augtrain.modalities.text.read import read_sent

        return read_sent(value, data.encoding, shape[0])

    # --- the tokenizer (the run's "normalization stats") ---
    def fit_stats(self, dataset_dir, manifest: dict) -> dict:
        from augtrain.modalities.text.read import train_texts
        from augtrain.modalities.text.tokens import train_tokenizer

        shards = train_texts(dataset_dir, manifest)
        return {"tokenizer": train_tokenizer((text for shard in shards for text in shard), self._bound())}

    def stats_problem(self, stats, shape: list[int]) -> str | None:
        from augtrain.modalities.text.tokens import tokenizer_problem

        return tokenizer_problem(stats, self._bound().vocab_size)

    # --- augment and tokenize ---
    def to_ship(self, samples: np.ndarray, stats: dict) -> np.ndarray:
        return self.ship(samples, stats)

    def ship(self, samples: np.ndarray, stats: dict, augment: Callable | None = None) -> np.ndarray:
        from augtrain.modalities.text.read import texts
        from augtrain.modalities.text.tokens import encode

        words = texts(samples)
        return encode(augment(words) if augment else words, stats["tokenizer"], self._bound().max_length)

    def model_input(self, shipped: np.ndarray, stats: dict) -> np.ndarray:
        return shipped

    def owns_transform(self, name: str) -> bool:
        from augtrain.modalities.text.augment import TRANSFORMS

        return name in TRANSFORMS

    def check_transform(self, name: str, params: dict[str, Any]) -> None:
        from augtrain.modalities.text.augment import TRANSFORMS

        check_declared(TRANSFORMS[name], name, params)

    def augmenter(self, transforms: list[dict], seed: int | None = None):
        from augtrain.modalities.text.augment import TextAugmenter

        return TextAugmenter(transforms, seed)

    # --- models ---
    def models(self) -> dict:
        from augtrain.modalities.text.models import MODELS

        return MODELS

    def build_model(self, name: str, params: dict[str, Any], shape, classes: int):
        settings = self._bound()
        return self.models()[name]((settings.max_length, settings.vocab_size), classes, **params)

    def carry_over(self, state: dict, their_stats: dict, stats: dict, model) -> dict:
        from augtrain.modalities.text.vectors import EMBEDDING, carried_rows, vocabulary

        rows, theirs = model.state_dict()[EMBEDDING], state.get(EMBEDDING)
        if theirs is None or theirs.shape[1] != rows.shape[1] or their_stats == stats:
            return state  # nothing to move (a misfit is reported with the rest)
        return {**state, EMBEDDING: carried_rows(theirs, vocabulary(their_stats), vocabulary(stats), rows)}

    def word_vectors(self, location: str, stats: dict, model, echo: Callable[[str], None]) -> dict:
        from augtrain.modalities.text.vectors import EMBEDDING, file_rows, vocabulary

        rows = model.state_dict()[EMBEDDING]
        return {EMBEDDING: file_rows(location, vocabulary(stats), rows, self._bound().lowercase, echo)}

    # --- report and explain ---
    def draw(self, axis, sample: np.ndarray, before: np.ndarray | None = None) -> None:
        from augtrain.modalities.text.draw import show_text
        from augtrain.modalities.text.read import texts

        show_text(axis, texts(sample[None])[0])

    def report_pair(self, samples: np.ndarray, stats: dict, transforms: list[dict], seed: int):
        from augtrain.modalities.text.read import stored, texts

        if not transforms:
            return samples, None, None
        return samples, stored(self.augmenter(transforms, seed)(texts(samples)), samples.shape[1]), None

    def profile(self, dataset: str, manifest: dict, stats: dict):
        from augtrain.modalities.text.draw import plot_lengths
        from augtrain.modalities.text.read import train_texts
        from augtrain.modalities.text.tokens import token_counts

        counts = token_counts(train_texts(dataset, manifest), stats["tokenizer"])  # only the counts are kept
        return plot_lengths(counts, self._bound().max_length)

    def attribute(self, model, x, target):
        from augtrain.modalities.text.explain import token_attributions

        return token_attributions(model, x, target)

    def plot_attributions(self, samples, attributions, titles, columns, stats):
        from augtrain.modalities.text.draw import plot_attributions
        from augtrain.modalities.text.tokens import loaded

        tokenizer = loaded(stats["tokenizer"], self._bound().max_length)
        tokens = [[tokenizer.id_to_token(int(i)) for i in ids if i != 0] for ids in samples]
        return plot_attributions(tokens, [a[: len(t)] for a, t in zip(attributions, tokens)], titles, columns)


TEXT = TextModality()
