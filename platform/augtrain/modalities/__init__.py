"""The modality registry: a manifest's `kind` -> its Modality (see modalities/base.py).

Adding a kind of data is a folder under modalities/ and one entry here (or `register` at import, as
a plug-in defined elsewhere does). The lookups below are the only place a kind, a model name or a
transform name is matched to its modality.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from augtrain.modalities.audio import AUDIO
from augtrain.modalities.base import Modality
from augtrain.modalities.image import IMAGE
from augtrain.modalities.models import check_builder
from augtrain.modalities.sequence import SEQUENCE
from augtrain.modalities.text import TEXT

if TYPE_CHECKING:  # the sources import pyarrow: checking a job's transforms and models needs none of it
    from augtrain.datasets.sources import Listing

# images last: audio and text claim a folder only when its files are recordings or texts, and a table only
# when it is declared theirs (text: data.text_column), where images claim any folder or table; and images own
# any albumentations transform, which takes importing albumentations (a second) to know
MODALITIES: dict[str, Modality] = {m.kind: m for m in (AUDIO, TEXT, SEQUENCE, IMAGE)}


def register(modality: Modality) -> Modality:
    """Add a modality (a plug-in's); its kind and model names must be new."""
    taken = {name for m in MODALITIES.values() for name in m.model_names}
    if modality.kind in MODALITIES or taken & set(modality.model_names):
        raise ValueError(f"modality {modality.kind!r}: its kind or a model name is registered already")
    MODALITIES[modality.kind] = modality
    return modality


def known(modality: Modality) -> Modality:
    """`modality`, registered in this process if it is not yet: a Ray process given a plug-in's modality
    by its driver validates specs that name its models."""
    return MODALITIES.setdefault(modality.kind, modality)


def modality(kind: str) -> Modality:
    """The modality of a manifest's `kind`."""
    if kind not in MODALITIES:
        raise ValueError(f"unknown kind of data {kind!r} (known: {', '.join(MODALITIES)})")
    return MODALITIES[kind]


def for_manifest(manifest: dict) -> Modality:
    """The modality of a collected dataset, set up by the fields its manifest records."""
    return modality(manifest["kind"]).bind(manifest)


def for_model(name: str) -> Modality:
    """The modality whose models include `name`."""
    for candidate in MODALITIES.values():
        if name in candidate.model_names:
            return candidate
    known = sorted(n for m in MODALITIES.values() for n in m.model_names)
    raise ValueError(f"unknown model {name!r} (known: {', '.join(known)})")


def for_transform(name: str) -> Modality:
    """The modality whose transforms include `name`."""
    for candidate in MODALITIES.values():
        if candidate.owns_transform(name):
            return candidate
    hints = "; ".join(f"{m.kind}: {m.transforms_hint}" for m in MODALITIES.values())
    raise ValueError(f"unknown transform {name!r} (expected one of a modality's: {hints})")


def read_source(data, labelled: bool = True) -> tuple[Modality, Listing]:
    """`data.source` listed by the modality that claims it (`data.kind` decides between several), with
    that modality; `labelled=False` (prediction inputs) lets labels be absent."""
    from augtrain.datasets.sources import SourceError

    claiming = [m for m in MODALITIES.values() if m.claims(data)]
    if data.kind is not None:
        claiming = [m for m in claiming if m.kind == data.kind]
    if not claiming:
        missing = not Path(data.source).exists()
        raise SourceError(f"{data.source}: no such file or folder" if missing else
                          f"{data.source}: no modality reads this source (a folder, .npz, .csv, .parquet, .ts, .tsv)")
    return claiming[0], claiming[0].listing(data, labelled)


def check_model(name: str, params: dict) -> None:
    """Raise ValueError if `name` is not a registered model or `params` are not among its arguments."""
    check_builder(name, for_model(name).models()[name], params)


def build_model(name: str, params: dict, shape, classes: int):
    """The registered model `name`, built for samples of `shape` and `classes` outputs."""
    return for_model(name).build_model(name, params, shape, classes)


def check_transform(name: str, params: dict) -> None:
    for_transform(name).check_transform(name, params)
