"""The Modality interface: what depends on the kind of data, one implementation per kind.

A modality owns how its sources are read and quarantined, how shipped samples become model input,
which transforms and models it offers, how a sample is drawn and explained, and how prediction
inputs are read. Its folder (`modalities/<kind>/`) holds the code; the registry
(`modalities/__init__.py`) maps a manifest's `kind` to it. Code outside never compares kinds: it
asks the modality. Modality objects travel into Ray tasks and Train workers as plain arguments, so
heavy libraries (torch, albumentations, PIL, matplotlib) are imported inside the methods that use
them, never when the object is unpickled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from augtrain.datasets.normalize import normalize, to_unit

if TYPE_CHECKING:
    from augtrain.config.spec import Data
    from augtrain.datasets.sources import Listing, Loaded


def check_declared(transform: type, name: str, params: dict[str, Any]) -> None:
    """Raise ValueError naming the problem with `transform(**params)`, a transform declared as a pydantic
    model (a sequence or text transform)."""
    from pydantic import ValidationError

    from augtrain.config.spec import problems

    try:
        transform(**params)
    except ValidationError as exc:
        raise ValueError(f"{name}: {problems(exc)}") from None


class Modality:
    kind: str = ""
    plural = ""  # what its samples are called in messages; default: the kind with an s
    model_names: tuple[str, ...] = ()  # the builders `models()` returns, known without importing torch
    transforms_hint = ""  # its transforms in a few words, for an error naming an unknown one
    fixed_shape = True  # whether a model takes exactly the shape it was trained on
    thumbnail = (1.0, 1.0)  # inches per sample in the report's grids
    # Samples travel as stored and the consumer (the trainer's collate) normalizes them, or the data
    # workers normalize before augmenting (then transforms work in normalized units).
    normalized_by_consumer: bool = False

    @property
    def samples_name(self) -> str:
        return self.plural or f"{self.kind}s"

    # A modality is a value: copies unpickled in Ray processes are equal (the stream caches one augmenter
    # per modality and transform list in each worker process).
    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.kind == self.kind

    def __hash__(self) -> int:
        return hash((type(self).__qualname__, self.kind))

    # --- collect ---
    def claims(self, data: Data) -> bool:
        """Whether this modality reads `data.source` (with `data.kind` to break ties, e.g. for .npz)."""
        raise NotImplementedError

    def load(self, data: Data, labelled: bool = True) -> Loaded:
        """The source's samples (one shape) and its rejects (id, "kind: detail"), loaded whole: the simple
        way to read a small source (a plug-in's); a modality for large data overrides `listing`."""
        raise NotImplementedError

    def listing(self, data: Data, labelled: bool = True, shape: list[int] | None = None) -> Listing:
        """The source listed in this process (metadata only) with the reader that Ray Data tasks decode
        its records by (to `shape` if given: a model's); by default what `load` holds."""
        from augtrain.datasets.sources import held

        loaded = self.load(data, labelled)
        return held(loaded, self.manifest_fields(loaded.samples) if loaded.samples else {})

    def manifest_fields(self, samples: list[np.ndarray]) -> dict:
        """Extra manifest fields that describe the collected samples."""
        return {}

    def bind(self, fields: dict) -> Modality:
        """This modality set up for one dataset from the fields its manifest records (a bundle's input.json
        carries them too; values from a file: checked). A modality whose samples need no settings to
        become model input is the same object."""
        return self

    def binding(self, manifest: dict) -> dict:
        """The manifest fields `bind` reads, for a bundle to carry."""
        return {}

    def describe(self, manifest: dict) -> str:
        """The samples of a manifest in a few words, for the collect summary."""
        return f"shape {tuple(manifest['shape'])}"

    # --- augment and normalize ---
    def owns_transform(self, name: str) -> bool:
        return False

    def check_transform(self, name: str, params: dict[str, Any]) -> None:
        """Raise ValueError naming the problem with `name(**params)`."""

    def augmenter(self, transforms: list[dict], seed: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
        """A function of a batch of shipped samples; `seed=None` draws fresh entropy on every call."""
        raise NotImplementedError

    def ship(self, samples: np.ndarray, stats: dict, augment: Callable | None = None) -> np.ndarray:
        """Decoded samples -> what the data workers ship: `to_ship`, then `augment` (the train split's
        augmenter) if given."""
        shipped = self.to_ship(samples, stats)
        return shipped if augment is None else augment(shipped)

    def fit_stats(self, dataset_dir, manifest: dict) -> dict:
        """What the train split teaches about turning samples into model input (the run's
        normalization.json): by default the per-channel mean and std of `stat_values`, with Ray Data."""
        from augtrain.datasets.stats import channel_moments

        return channel_moments(dataset_dir, manifest, self)

    def stats_problem(self, stats, shape: list[int]) -> str | None:
        """What is wrong with the stats of a bundle from anyone, for samples of `shape`: {"mode": "series"}, or
        a mean and std per channel (the last axis)."""
        if stats == {"mode": "series"}:
            return None
        channels = shape[-1]
        numbers = [stats.get(key) for key in ("mean", "std")] if isinstance(stats, dict) else None
        if not numbers or not all(isinstance(v, list) and len(v) == channels for v in numbers) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for v in numbers for x in v
        ):
            return f"normalization.json: expected a mean and std per channel ({channels}) or {{\"mode\": \"series\"}}"
        return None

    def stat_values(self, samples: np.ndarray) -> np.ndarray:
        """Decoded samples -> the float values whose per-channel (last axis) mean and std normalize them."""
        return to_unit(samples)

    def to_ship(self, samples: np.ndarray, stats: dict) -> np.ndarray:
        """Decoded samples -> what the data workers augment and ship."""
        return samples if self.normalized_by_consumer else normalize(samples, stats)

    def model_input(self, shipped: np.ndarray, stats: dict) -> np.ndarray:
        """A batch as the data workers ship it -> the model's input."""
        return normalize(shipped, stats) if self.normalized_by_consumer else shipped

    # --- models ---
    def models(self) -> dict[str, Callable]:
        """{name: builder(shape, classes, **params) -> nn.Module}, imported on demand (torch)."""
        raise NotImplementedError

    def build_model(self, name: str, params: dict[str, Any], shape, classes: int):
        return self.models()[name](tuple(shape), classes, **params)

    def carry_over(self, state: dict, their_stats: dict, stats: dict, model) -> dict:
        """Another run's weights (trained on inputs made with `their_stats`, its normalization.json) made to
        start `model`, whose inputs `stats` make: by default as they are."""
        return state

    def word_vectors(self, location: str, stats: dict, model, echo: Callable[[str], None]) -> dict:
        """{tensor name: tensor} that start `model` from the word vectors at `location` (model.vectors)."""
        raise ValueError(f"{self.samples_name} models embed no words")

    # --- report and explain ---
    def draw(self, axis, sample: np.ndarray, before: np.ndarray | None = None) -> None:
        """One sample (as stored, or as the model sees it) on a matplotlib axis; `before` faint behind it."""
        raise NotImplementedError

    def report_pair(self, samples: np.ndarray, stats: dict, transforms: list[dict], seed: int):
        """(samples as drawn, the same augmented or None, the drawn `before` under them or None) for the
        report's data card, augmented as in training."""
        raise NotImplementedError

    def profile(self, dataset: str, manifest: dict, stats: dict):
        """A matplotlib figure the report's data card shows under the class counts, or None (`stats`: the
        run's normalization.json)."""
        return None

    def attribute(self, model, x, target) -> np.ndarray:
        """Attributions of model inputs `x` (a tensor) to the `target` logits, shaped like `x`."""
        from augtrain.artifacts.explain import attribute

        return attribute(model, x, target)

    def plot_attributions(self, samples: np.ndarray, attributions: np.ndarray, titles: list[str], columns: int,
                          stats: dict):
        """A matplotlib figure of model inputs beside their attributions (`stats`: the run's normalization.json)."""
        raise NotImplementedError

    # --- predict ---
    def prediction_inputs(self, data: Data, shape: list[int]):
        """(the listing of `data.source`, as `collect` lists it, labels optional; the layout of its decoded
        samples; whether it has labels): `datasets.tasks` decodes it in Ray Data tasks or in this process."""
        from augtrain.datasets.sources import SourceError

        takes = f"{self.samples_name} of shape {list(shape)}"
        if not self.claims(data):
            raise SourceError(f"{data.source}: not {self.samples_name}, so they do not fit the model ({takes})")
        listing = self.listing(data, labelled=False, shape=shape if self.fixed_shape else None)
        found = list(listing.reader.shape) if listing.ids else list(shape)
        if self.fixed_shape and found != list(shape):
            raise SourceError(f"{data.source}: {self.samples_name} of shape {found} do not fit the model ({takes})")
        layout = {"dtype": listing.reader.dtype if listing.ids else "float32", "shape": found}
        return listing, layout, any(listing.labels)

    def decode_input(self, value, data: Data, shape: list[int]) -> tuple[np.ndarray | None, str]:
        """One input a client sent to a served model (a file's bytes, or a JSON value) -> (the sample as
        `prediction_inputs` decodes one, "") or (None, the reason `collect` would quarantine it for);
        `data` is the bundle's data section as `predict` reads with it, `shape` the model's sample shape."""
        return None, f"not served: {self.samples_name} models do not decode sent inputs yet"
