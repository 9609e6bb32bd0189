"""Image sources: folders of image files, tables of features or image paths, .npz arrays, scikit-learn's
digits, at a local path or a URI. Listing happens in the driver (names, labels, headers); every file or
row is decoded by the readers here in Ray Data tasks, for `collect` and for `predict` alike."""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from augtrain.config.spec import Data
from augtrain.datasets.files import (
    Refused,
    display,
    is_folder,
    open_record,
    stamp,
)
from augtrain.datasets.layouts import check_columns, file_table, folder, labelled_rows
from augtrain.datasets.sources import (
    Listing,
    Loaded,
    NpzRows,
    Reader,
    SourceError,
    csv_records,
    held,
    npz_header,
    npz_labels,
    number,
    parquet_records,
    table_header,
    utf8,
)
from augtrain.datasets.tasks import map_chunks
from augtrain.errors import clip

LONGEST_DEFAULT_SIDE = 256  # images of mixed sizes, no data.resize: the median size, at most this long


def listing(data: Data, labelled: bool, shape: list[int] | None, resized: bool) -> Listing:
    """`data.source` listed; decoded later to `shape` (H, W, C) if given (a model's, resized to it if its
    training images were `resized`), else to the size and channels the files agree on (or data.resize /
    data.channels)."""
    if data.source == "sklearn-digits":
        return held(digits(), {})
    source = data.source
    if is_folder(source):
        return image_files(folder(source, data, "images", labelled), data, shape, resized)
    if Path(source).suffix == ".npz":
        return npz_images(source)
    return table(source, data, labelled, shape, resized)


def digits() -> Loaded:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 17 grey levels (0..16) map one-to-one onto uint8, the dtype image augmentation expects.
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    out = Loaded()
    for i, (image, label) in enumerate(zip(images, digits.target)):
        out.add(f"digits/{i}", image, label)
    return out


def image_files(files: Listing, data: Data, shape: list[int] | None, resized: bool) -> Listing:
    """Image files to decode at one size and channel count: a model's `shape`, else data.resize and
    data.channels, else what the files' headers (read in Ray Data tasks) agree on. A dataset whose images
    are resized says so in its manifest (`resized`), and so do its models' bundles."""
    if shape is not None:
        files.reader = model_reader(data, shape, resized)
        return files
    if data.resize and data.channels:  # every header is checked as its file is decoded
        files.reader = ImageReader(data, data.channels, tuple(data.resize[::-1]), resize=True)
        return files
    headers = map_chunks(read_headers, files.keys, 256, max_pixels=data.max_pixels)
    out = Listing(Reader(), rejects=list(files.rejects), fingerprint=files.fingerprint)
    sizes, modes = Counter(), Counter()
    for id_, label, key, given, (reason, header) in zip(files.ids, files.labels, files.keys, files.given, headers):
        if reason:
            out.rejects.append((id_, reason))
            continue
        out.add(id_, label, key, given)
        modes[header[0]] += 1
        sizes[tuple(header[1])] += 1
    if not out.ids:
        raise SourceError(f"{data.source}: none of {len(files.ids) + len(files.rejects)} entries is a readable image")
    channels = data.channels or modes.most_common(1)[0][0]
    size = tuple(data.resize[::-1]) if data.resize else agreed_size(sizes)
    if len(sizes) > 1 and not data.resize:
        out.note = (f"images of {len(sizes)} sizes (most common {'x'.join(map(str, sizes.most_common(1)[0][0]))}): "
                    f"all resized to {size[0]}x{size[1]}; set data.resize to choose")
    out.reader = ImageReader(data, channels, size, resize=data.resize is not None or len(sizes) > 1)
    return out


def model_reader(data: Data, shape: list[int], resized: bool) -> ImageReader:
    """The reader of a model's inputs: images of its (H, W, C) `shape`, resized to it if its training
    images were `resized`, else of exactly that size or quarantined."""
    return ImageReader(data, shape[2], (shape[1], shape[0]), resize=resized)


def read_sent(content, data: Data, shape: list[int], resized: bool) -> tuple[np.ndarray | None, str]:
    """An image file's bytes sent to a served model, decoded as `predict` decodes a file of a folder."""
    if not isinstance(content, bytes):
        return None, "not an image file: send the file's bytes (base64 in JSON, or a multipart upload)"
    if not content:
        return None, "empty file (0 bytes)"
    return model_reader(data, shape, resized).read_one(io.BytesIO(content))


def agreed_size(sizes: Counter) -> tuple[int, int]:
    """(W, H): the one size all images have, else the median width and height, scaled down to at most
    LONGEST_DEFAULT_SIDE pixels on the longer side (a photo collection must not become 4000x3000 samples)."""
    if len(sizes) == 1:
        return next(iter(sizes))
    widths = np.repeat([w for w, _ in sizes], list(sizes.values()))
    heights = np.repeat([h for _, h in sizes], list(sizes.values()))
    width, height = float(np.median(widths)), float(np.median(heights))
    scale = min(1.0, LONGEST_DEFAULT_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def read_headers(keys: list[str], max_pixels: int) -> list:
    """[reason, None] or [None, [channels, [width, height]]] of each file (a Ray Data task)."""
    return [list(read_header(key, max_pixels)) for key in keys]


class ImageReader(Reader):
    """Image files -> (H, W, C) uint8 of `size` (W, H) and `channels`; other sizes are resized if `resize`
    (and the manifest of what it collects says `resized`), else quarantined."""

    dtype = "uint8"
    random_access = True

    def __init__(self, data: Data, channels: int, size: tuple[int, int], resize: bool):
        self.data, self.channels, self.size, self.resize = data, channels, tuple(size), resize
        self.shape = (size[1], size[0], channels)
        self.fields = {"resized": True} if resize else {}

    def read(self, keys: list):
        for key in keys:
            yield self.read_one(key)

    def read_one(self, key) -> tuple[np.ndarray | None, str]:
        """One file (a path, a URI or an open binary file) -> (image, "") or (None, reason)."""
        return read_image(key, self.data.max_pixels, self.channels, self.size, self.resize)


def read_image(key: str | Path | io.IOBase, max_pixels: int, channels: int, size: tuple[int, int],
               resize: bool) -> tuple[np.ndarray | None, str]:
    """One file as an (H, W, C) uint8 image of `size` (W, H) and `channels`, or (None, why it is quarantined);
    the file is opened once, its header checked before anything is decoded."""
    with _opened(key, max_pixels) as (reason, image):
        if reason:
            return None, reason
        image_channels = CHANNELS[image.mode]
        if image_channels > channels:
            return None, f"wrong mode: {image_channels}-channel image in a {channels}-channel dataset"
        if image.size != tuple(size) and not resize:
            return None, f"wrong shape: {image.size[0]}x{image.size[1]} (expected {size[0]}x{size[1]})"
        try:
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != tuple(size):
                image = image.resize(size, Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8).reshape(size[1], size[0], channels), ""
        except Exception as exc:  # a hostile file trips the decoder anywhere; it is quarantined, the rest go on
            return None, f"truncated or corrupt: {type(exc).__name__}: {clip(exc)}"


def read_header(key: str | Path, max_pixels: int):
    """(reason, None) for a file to quarantine, else (None, (channels, (width, height)))."""
    with _opened(key, max_pixels) as (reason, image):
        return (reason, None) if reason else (None, (CHANNELS[image.mode], image.size))


CHANNELS = {"1": 1, "L": 1, "P": 3, "RGB": 3, "RGBA": 3}
# the raster formats read; Pillow would otherwise try all it knows, EPS among them (run through Ghostscript)
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA")


@contextlib.contextmanager
def _opened(key: str | Path | io.IOBase, max_pixels: int):
    """(None, the image with its header read) or (why the file is quarantined, None)."""
    with contextlib.ExitStack() as stack:
        try:
            file = key if isinstance(key, io.IOBase) else open_record(stack, key)  # an open file: bytes sent
            image = stack.enter_context(Image.open(file, formats=FORMATS))
            if image.size[0] * image.size[1] > max_pixels:
                raise Refused(f"decompression bomb: {image.size[0]}x{image.size[1]} pixels exceeds "
                               f"data.max_pixels={max_pixels}")
            if image.mode not in CHANNELS:
                raise Refused(f"wrong mode: {image.mode} (expected grey or RGB)")
        except Refused as refused:
            reason, image = str(refused), None
        except Image.DecompressionBombError as exc:
            reason, image = f"decompression bomb: {exc}", None
        except UnidentifiedImageError:
            reason, image = f"not a readable image: not {', '.join(FORMATS)}", None
        except Exception as exc:  # e.g. a short PNG header raises ValueError, a bad TIFF tag KeyError
            reason, image = f"not a readable image: {type(exc).__name__}: {clip(exc)}", None
        else:
            reason = None
        yield reason, image


class NpzImages(NpzRows):
    """Rows of an .npz's x (and x_test) -> (H, W, C) images: uint8 kept, other numbers as float32."""

    def __init__(self, source: str, arrays: tuple[str, ...], shape: tuple[int, ...], dtype: str):
        super().__init__(source, arrays)
        self.shape, self.dtype = shape, dtype

    def read(self, keys: list):
        for sample in self.rows(keys):
            sample = sample.reshape(self.shape).astype(self.dtype, copy=False)
            ok = self.dtype == "uint8" or np.isfinite(sample).all()
            yield (sample, "") if ok else (None, "non-finite values (NaN or inf)")


def npz_images(source: str) -> Listing:
    """x (N, H, W[, C]) and y (N,), and x_test/y_test for a test split of the source's own."""
    name = display(Path(source).name)
    out = Listing(Reader())
    shapes, arrays = set(), []
    for x, y, given in (("x", "y", ""), ("x_test", "y_test", "test")):
        labels = npz_labels(source, y, x)
        if labels is None:
            continue
        arrays.append(x)
        shape, dtype = npz_header(source, x, len(labels))
        shapes.add(shape[1:])
        for i, label in enumerate(labels):
            out.add(f"{name}[{i}]" if x == "x" else f"{name}:test[{i}]", label, (x, i, 1), given)
        out.fingerprint += f"{x}{shape}{dtype}"
    shape = next(iter(shapes))
    if len(shapes) > 1 or len(shape) not in (2, 3):
        raise SourceError(f"{source}: samples of shape {sorted(shapes)}; expected one (H, W) or (H, W, C)")
    shape = shape if len(shape) == 3 else (*shape, 1)
    out.reader = NpzImages(source, tuple(arrays), shape, "uint8" if dtype == np.uint8 else "float32")
    # the shapes, and the file's stamp that the tasks check
    out.fingerprint = hashlib.sha256(f"{out.fingerprint}{out.reader.listed[source]}".encode()).hexdigest()
    return out


class Features(Reader):
    """Rows of a table -> float32 samples of `shape` from the feature columns."""

    dtype = "float32"

    def __init__(self, source: str, header: list[str], features: list[str], shape: tuple[int, ...]):
        self.source, self.features, self.shape = source, features, tuple(shape)
        self.columns = [header.index(c) for c in features]
        self.listed = {source: stamp(source)}

    def read(self, keys: list):
        rows = csv_records(self.source, keys) if self.source.endswith(".csv") else parquet_records(self.source, keys)
        for row in rows:
            values = [number(row[c]) for c in self.columns]
            bad = next((c for c, v in zip(self.features, values) if v is None), None)
            if not utf8(row):
                yield None, "not valid UTF-8"
            elif bad is not None:
                yield None, f"missing or non-numeric value: column {clip(bad, 40)}"
            else:
                yield np.asarray(values, dtype=np.float32).reshape(self.shape), ""


def table(source: str, data: Data, labelled: bool, shape: list[int] | None, resized: bool) -> Listing:
    """A CSV (rows named by file line) or Parquet (rows named by index) table of features or image paths;
    its label column (and data.split_column) read here, its samples by the tasks."""
    if data.path_column:
        return image_table(source, data, labelled, shape, resized)
    header = table_header(source)
    check_columns(source, header, data, labelled)
    features = data.feature_columns or [c for c in header if c not in (data.label_column, data.split_column)]
    unknown = sorted(set(features) - set(header))
    if unknown:
        raise SourceError(f"{source}: unknown feature column(s) {unknown}")
    sample_shape = data.image_shape or (1, len(features), 1)
    if int(np.prod(sample_shape)) != len(features):
        raise SourceError(f"{source}: data.image_shape {sample_shape} does not hold {len(features)} features")
    out = labelled_rows(source, header, data, labelled)
    out.reader = Features(source, header, features, sample_shape)
    return out


def image_table(source: str, data: Data, labelled: bool, shape: list[int] | None, resized: bool) -> Listing:
    """Images named by a table's data.path_column, decoded like a folder's."""
    return image_files(file_table(source, data, labelled), data, shape, resized)
