"""Image sources: folders of image files, tables of features or image paths, .npz arrays, scikit-learn's
digits. Every file is decoded by the same reader here, for `collect` and for `predict`."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from augtrain.config.spec import Data
from augtrain.datasets.files import display, inside, open_regular, walk
from augtrain.datasets.sources import (
    Loaded,
    SourceError,
    clip,
    csv_rows,
    npz_arrays,
    number,
    parquet_rows,
    utf8,
)


def load(data: Data, labelled: bool = True) -> Loaded:
    """Read `data.source` with the reader its name or suffix selects; `labelled=False` (prediction inputs)
    lets a table go without its label column."""
    if data.source == "sklearn-digits":
        return digits()
    path = Path(data.source)
    if path.is_dir():
        return image_folder(path, data)
    if path.suffix == ".npz":
        return npz_images(path)
    return table(path, data, labelled)


def digits() -> Loaded:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 17 grey levels (0..16) map one-to-one onto uint8, the dtype image augmentation expects.
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    out = Loaded()
    for i, (image, label) in enumerate(zip(images, digits.target)):
        out.add(f"digits/{i}", image, label)
    return out


def image_folder(root: Path, data: Data) -> Loaded:
    listing = walk(root, data.follow_links)
    items, rejects = [], list(listing.rejects)
    for id_, path in listing.files:
        parts = Path(id_).parts
        if len(parts) < 2:
            rejects.append((id_, "not in a class sub-folder"))
        else:
            items.append((id_, path, parts[0]))
    if not items and not rejects:
        raise SourceError(f"{root}: no images found (expected one sub-folder per class)")
    return images(items, rejects, root, data)


def images(items: list[tuple[str, Path, str]], rejects: list[tuple[str, str]], root: Path, data: Data) -> Loaded:
    """Decode (id, file, label) items at the most common size and channel count (or data.resize/channels)."""
    out = Loaded(rejects=rejects)
    headers = {}
    for id_, path, label in items:
        reason, header = read_header(path, data.max_pixels)
        if reason:
            out.rejects.append((id_, reason))
        else:
            headers[id_] = (path, label, header)
    if not headers:
        raise SourceError(f"{root}: none of {len(items) + len(rejects)} entries is a readable image")
    channels = data.channels or Counter(h[2][0] for h in headers.values()).most_common(1)[0][0]
    size = tuple(data.resize[::-1]) if data.resize else Counter(h[2][1] for h in headers.values()).most_common(1)[0][0]
    for id_, (path, label, _) in headers.items():
        image, reason = read_image(path, data, channels, size)
        if reason:
            out.rejects.append((id_, reason))
        else:
            out.add(id_, image, label)
    return out


def read_image(path: Path, data: Data, channels: int, size: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
    """One file as an (H, W, C) uint8 image of `size` (W, H) and `channels`, or (None, why it is quarantined)."""
    reason, header = read_header(path, data.max_pixels)
    if reason:
        return None, reason
    image_channels, image_size = header
    if image_channels > channels:
        return None, f"wrong mode: {image_channels}-channel image in a {channels}-channel dataset"
    if image_size != size and not data.resize:
        return None, f"wrong shape: {image_size[0]}x{image_size[1]} (expected {size[0]}x{size[1]})"
    try:
        return decode(path, channels, size), None
    except Exception as exc:  # a hostile file trips the decoder anywhere; it is quarantined, the rest go on
        return None, f"truncated or corrupt: {type(exc).__name__}: {clip(exc)}"


def read_header(path: Path, max_pixels: int):
    """(reason, None) for a file to quarantine, else (None, (channels, (width, height)))."""
    try:
        with open_regular(path) as file:
            if os.fstat(file.fileno()).st_size == 0:
                return "empty file (0 bytes)", None
            with Image.open(file) as image:
                mode, size = image.mode, image.size
    except Image.DecompressionBombError as exc:
        return f"decompression bomb: {exc}", None
    except UnidentifiedImageError:
        return "not a readable image: no image format recognised", None
    except Exception as exc:  # e.g. a short PNG header raises ValueError, a bad TIFF tag KeyError
        return f"not a readable image: {type(exc).__name__}: {clip(exc)}", None
    if size[0] * size[1] > max_pixels:
        return f"decompression bomb: {size[0]}x{size[1]} pixels exceeds data.max_pixels={max_pixels}", None
    channels = {"1": 1, "L": 1, "P": 3, "RGB": 3, "RGBA": 3}.get(mode)
    if channels is None:
        return f"wrong mode: {mode} (expected grey or RGB)", None
    return None, (channels, size)


def decode(path: Path, channels: int, size: tuple[int, int]) -> np.ndarray:
    with open_regular(path) as file, Image.open(file) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != size:
            image = image.resize(size, Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    return array.reshape(size[1], size[0], channels)


def npz_images(path: Path) -> Loaded:
    arrays = npz_arrays(path, [["x", "y"]])
    x, y = arrays["x"], arrays["y"]
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise SourceError(f"{path}: x has shape {x.shape}; expected (N, H, W) or (N, H, W, C)")
    x = x if x.dtype == np.uint8 else x.astype(np.float32)
    out = Loaded()
    for i, (sample, label) in enumerate(zip(x, y)):
        if np.isfinite(sample).all():
            out.add(f"{display(path.name)}[{i}]", sample, label)
        else:
            out.rejects.append((f"{display(path.name)}[{i}]", "non-finite values (NaN or inf)"))
    return out


def table(path: Path, data: Data, labelled: bool) -> Loaded:
    """A CSV (rows named by file line) or Parquet (rows named by index) table of features or image paths."""
    header, rows = csv_rows(path) if path.suffix == ".csv" else parquet_rows(path)
    column = {name: i for i, name in enumerate(header)}
    if data.label_column not in column and labelled:
        raise SourceError(f"{path}: no label column {data.label_column!r} (columns: {clip(', '.join(header))})")

    def label_of(row: list) -> str | None:
        value = row[column[data.label_column]] if data.label_column in column else ""
        return None if value is None or (labelled and value == "") else value

    if data.image_column:
        if data.image_column not in column:
            raise SourceError(f"{path}: no image column {data.image_column!r}")
        return image_table(path, data, rows, column[data.image_column], label_of)
    features = data.feature_columns or [c for c in header if c != data.label_column]
    unknown = sorted(set(features) - set(header))
    if unknown:
        raise SourceError(f"{path}: unknown feature column(s) {unknown}")
    shape = data.image_shape or (1, len(features), 1)
    if int(np.prod(shape)) != len(features):
        raise SourceError(f"{path}: data.image_shape {shape} does not hold {len(features)} features")
    out = Loaded()
    for line, row in rows:
        id_ = f"{display(path.name)}:{line}"
        values = [number(row[column[c]]) for c in features]
        bad = next((c for c, v in zip(features, values) if v is None), None)
        if not utf8(row):
            out.rejects.append((id_, "not valid UTF-8"))
        elif bad is not None:
            out.rejects.append((id_, f"missing or non-numeric value: column {clip(bad, 40)}"))
        elif label_of(row) is None:
            out.rejects.append((id_, f"missing label: column {data.label_column}"))
        else:
            out.add(id_, np.asarray(values, dtype=np.float32).reshape(shape), label_of(row))
    return out


def image_table(path: Path, data: Data, rows: list[tuple[int, list]], image: int, label_of) -> Loaded:
    """Images named by a table column, relative to the table's folder (never outside it unless allowed)."""
    items, rejects = [], []
    for line, row in rows:
        name = row[image]
        id_ = display(name) if isinstance(name, str) and name else f"{display(path.name)}:{line}"
        file, reason = inside(path.parent, name, data.follow_links) if isinstance(name, str) and name else (None, "missing path")
        if reason is None and label_of(row) is None:
            reason = f"missing label: column {data.label_column}"
        elif reason is None and not utf8(row):
            reason = "not valid UTF-8"
        if reason:
            rejects.append((id_, reason))
        else:
            items.append((id_, file, label_of(row)))
    return images(items, rejects, path.parent, data)
