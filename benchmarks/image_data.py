"""Image benchmark data (issue 22), made from Debian packages: Fashion-MNIST in the .npz layout augtrain
reads (x, y and the official test split as x_test, y_test), with subsets for transfer (pretrain on classes
0-4, fine-tune on a few images of 5-9); and a scarce-data set of real photographs: square crops of mixed
sizes from 16 photographs of 4 kinds of scene, as train/ and test/ class folders, the test crops cut from
the right 30 % of each photograph and the train crops from the rest. Plus the classical baseline: an RBF
SVC on colour histograms and downsampled pixels, tuned by cross-validation.

    cd benchmarks && PYTHONPATH=. python image_data.py [SEEDS]   (prepares all; the SVC on the crops per seed)

Packages are fetched with `apt-get download` (no root needed, but apt's package lists must be there:
`apt-get update` once) and unpacked with `dpkg-deb -x`. Everything lands under data/image_sources/ at
the checkout's root (git-ignored) and is made once.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SOURCES = Path(__file__).resolve().parents[1] / "data" / "image_sources"

FASHION_PACKAGE = "dataset-fashion-mnist"
FASHION_FILES = "usr/share/datasets/fashion-mnist"
# Zalando's label order; "T-shirt/top" without its slash, as a name that is safe in a path
FASHION_CLASSES = ["T-shirt-top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]

MATE = "mate-backgrounds", "usr/share/backgrounds/mate/nature"  # GPL-2+ (its copyright file)
PLASMA = "plasma-workspace-wallpapers", "usr/share/wallpapers"  # LGPLv3 (each metadata.json), GPL-2+ (Debian)
SKIMAGE = "python3-skimage", "usr/lib/python3/dist-packages/skimage/data"  # coffee CC0; motorcycle Middlebury 2014
PHOTOS = {  # class: (package, folder in it, file) of each photograph
    "flower": [(*MATE, "FreshFlower.jpg"), (*MATE, "Garden.jpg"), (*MATE, "YellowFlower.jpg"),
               (*MATE, "LadyBird.jpg")],
    "foliage": [(*MATE, "Blinds.jpg"), (*MATE, "GreenMeadow.jpg"), (*MATE, "RainDrops.jpg"),
                (*PLASMA, "OneStandsOut/contents/images/1280x800.jpg")],
    "man-made": [(*SKIMAGE, "coffee.png"), (*SKIMAGE, "motorcycle_left.png"),
                 (*PLASMA, "ColorfulCups/contents/images/2560x1600.jpg"),
                 (*PLASMA, "Grey/contents/images/1280x800.jpg")],
    "sky-water": [(*MATE, "Storm.jpg"), (*PLASMA, "Kite/contents/images/1280x800.jpg"),
                  (*PLASMA, "DarkestHour/contents/images/1280x800.jpg"),
                  (*PLASMA, "summer_1am/contents/images/1280x800.jpg")],
}
PHOTO_SIDE = 400  # every photograph is scaled to this shorter side first: one scale for all crops
CROP_SIZES = 48, 160  # square crops of a random side in this range (px), written at that size
CROPS = {"train": 110, "test": 40}  # per class, spread evenly over its photographs
TRAIN_WIDTH = 0.7  # train crops lie in the left 70 % of a photograph, test crops in the right 30 %
CROP_SIZE = 64  # what load_crops (and the jobs, with data.resize) scale crops to


def unpacked(package: str, paths: list[str]) -> Path:
    """The folder holding `paths` (relative to the package's root) of a Debian package, downloaded with
    `apt-get download` and unpacked once; only those files are kept."""
    out = SOURCES / "packages" / package
    if all((out / path).is_file() for path in paths):
        return out
    with tempfile.TemporaryDirectory() as scratch:
        try:
            subprocess.run(["apt-get", "download", package], cwd=scratch, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            raise SystemExit(f"apt-get download {package} failed (run `apt-get update` first?): {exc.stderr}") from None
        subprocess.run(["dpkg-deb", "-x", str(next(Path(scratch).glob("*.deb"))), f"{scratch}/root"], check=True)
        for path in paths:
            (out / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(scratch, "root", path), out / path)
    return out


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped or not): magic 0x0000 0x08 NDIM, NDIM big-endian uint32
    sizes, then the values; sizes and length checked."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    zero, kind, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or kind != 0x08 or ndim == 0:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes (magic {raw[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    if len(raw) != 4 + 4 * ndim + int(np.prod(shape)):
        raise ValueError(f"{path}: {len(raw)} bytes do not hold an array of shape {shape}")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def save_npz(path: Path, **arrays: np.ndarray) -> Path:
    """Arrays written uncompressed (augtrain seeks to rows) to a file that appears whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}")
    with partial.open("wb") as file:
        np.savez(file, **arrays)
    partial.replace(path)
    return path


def fashion_arrays() -> dict[str, np.ndarray]:
    """Fashion-MNIST's 60,000 train and 10,000 test images (28x28 uint8) and labels (0-9)."""
    names = {"x": "train-images-idx3-ubyte.gz", "y": "train-labels-idx1-ubyte.gz",
             "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
    root = unpacked(FASHION_PACKAGE, [f"{FASHION_FILES}/{name}" for name in names.values()]) / FASHION_FILES
    arrays = {key: read_idx(root / name) for key, name in names.items()}
    for x, y, count in (("x", "y", 60_000), ("x_test", "y_test", 10_000)):
        if arrays[x].shape != (count, 28, 28) or arrays[y].shape != (count,) or arrays[y].max() > 9:
            raise ValueError(f"{FASHION_PACKAGE}: {x} {arrays[x].shape}, {y} {arrays[y].shape}: not Fashion-MNIST")
    return arrays


def fashion_mnist() -> Path:
    """data/image_sources/fashion_mnist/fashion_mnist.npz: x (60000, 28, 28) uint8, y class names,
    x_test and y_test the official test split (augtrain keeps it as the test split)."""
    path = SOURCES / "fashion_mnist" / "fashion_mnist.npz"
    if not path.is_file():
        arrays = fashion_arrays()
        names = np.asarray(FASHION_CLASSES)
        save_npz(path, x=arrays["x"], y=names[arrays["y"]], x_test=arrays["x_test"], y_test=names[arrays["y_test"]])
    return path


def fashion_subset(classes, per_class: int | None = None, seed: int = 0, by_class: bool = False) -> Path:
    """An .npz of Fashion-MNIST's `classes` (label numbers 0-9): `per_class` train images of each drawn
    with `seed` (None: all of them), in a random order (`by_class`: one class after another), and every
    official test image of those classes as x_test/y_test."""
    classes = sorted(classes)
    name = (f"fashion_{''.join(map(str, classes))}_{'all' if per_class is None else f'{per_class}each'}_seed{seed}"
            f"{'_by_class' if by_class else ''}.npz")
    path = SOURCES / "fashion_mnist" / name
    if path.is_file():
        return path
    arrays, rng = fashion_arrays(), np.random.default_rng(seed)
    train = [np.flatnonzero(arrays["y"] == c) for c in classes]
    if per_class is not None:
        train = [np.sort(rng.choice(rows, per_class, replace=False)) for rows in train]
    train = np.concatenate(train) if by_class else rng.permutation(np.concatenate(train))
    test = np.flatnonzero(np.isin(arrays["y_test"], classes))
    names = np.asarray(FASHION_CLASSES)
    return save_npz(path, x=arrays["x"][train], y=names[arrays["y"][train]],
                    x_test=arrays["x_test"][test], y_test=names[arrays["y_test"][test]])


def photographs() -> dict[str, list[Image.Image]]:
    """The photographs of each class, RGB, scaled to PHOTO_SIDE on their shorter side."""
    wanted: dict[str, list[str]] = {}
    for package, folder, file in (photo for photos in PHOTOS.values() for photo in photos):
        wanted.setdefault(package, []).append(f"{folder}/{file}")
    roots = {package: unpacked(package, paths) for package, paths in wanted.items()}
    out = {}
    for label, photos in PHOTOS.items():
        out[label] = []
        for package, folder, file in photos:
            with Image.open(roots[package] / folder / file) as image:
                scale = PHOTO_SIDE / min(image.size)
                size = round(image.size[0] * scale), round(image.size[1] * scale)
                out[label].append(image.convert("RGB").resize(size, Image.Resampling.LANCZOS))
    return out


def crop(image: Image.Image, rng: np.random.Generator, test: bool) -> Image.Image:
    """A square crop of random side inside the photograph's train (left) or test (right) part."""
    width, height = image.size
    left, right = (round(width * TRAIN_WIDTH), width) if test else (0, round(width * TRAIN_WIDTH))
    side = int(rng.integers(CROP_SIZES[0], min(CROP_SIZES[1], right - left, height) + 1))
    x, y = int(rng.integers(left, right - side + 1)), int(rng.integers(0, height - side + 1))
    return image.crop((x, y, x + side, y + side))


def photo_crops(seed: int = 0) -> Path:
    """data/image_sources/photo_crops_seed{seed}/{train,test}/{class}/*.jpg: CROPS drawn with `seed`, at
    their own sizes (48-160 px); augtrain keeps test/ as the test split and draws val from train/."""
    out = SOURCES / f"photo_crops_seed{seed}"
    if out.is_dir():
        return out
    rng, partial = np.random.default_rng(seed), out.with_name(f".{out.name}")
    shutil.rmtree(partial, ignore_errors=True)
    for label, images in photographs().items():
        for split, count in CROPS.items():
            (partial / split / label).mkdir(parents=True)
            for i in range(count):
                image = crop(images[i % len(images)], rng, split == "test")
                image.save(partial / split / label / f"{label}_{i:03d}.jpg", quality=95)
    partial.rename(out)
    return out


def load_crops(folder: Path, split: str, size: int = CROP_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(x (N, size, size, 3) uint8, y class names) of a split of photo_crops' layout, each crop resized
    as augtrain resizes images (bilinear)."""
    files = sorted((folder / split).glob("*/*.jpg"))
    return np.stack([read_crop(file, size) for file in files]), np.asarray([file.parent.name for file in files])


def read_crop(file: Path, size: int) -> np.ndarray:
    with Image.open(file) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))


def features(x: np.ndarray, pixels: int = 16) -> np.ndarray:
    """Per image (N, H, W, C uint8): a joint colour histogram (4 levels per channel, 16 for grey), as
    fractions of its pixels, then the image downsampled to pixels x pixels, scaled to 0-1."""
    n, _, _, channels = x.shape
    levels = 4 if channels == 3 else 16
    codes = (x // (256 // levels)).reshape(n, -1, channels) @ (levels ** np.arange(channels))
    bins = levels ** channels
    histogram = np.bincount((codes + bins * np.arange(n)[:, None]).ravel(), minlength=n * bins).reshape(n, bins)
    small = np.stack([np.asarray(Image.fromarray(image.squeeze(-1) if channels == 1 else image)
                                 .resize((pixels, pixels), Image.Resampling.BOX)) for image in x])
    return np.hstack([histogram / codes.shape[1], small.reshape(n, -1) / 255.0])


def svc_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 seed: int = 0) -> float:
    """Test accuracy of an RBF SVC (standardised features, C and gamma chosen by 5-fold stratified
    cross-validation on the train images) on features() of (N, H, W, C) uint8 images."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    grid = {"svc__C": [0.1, 1, 10, 100, 1000], "svc__gamma": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]}
    search = GridSearchCV(make_pipeline(StandardScaler(), SVC(kernel="rbf")), grid,
                          cv=StratifiedKFold(5, shuffle=True, random_state=seed))
    search.fit(features(train_x), train_y)
    return float(search.score(features(test_x), test_y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", type=int, nargs="?", default=3)
    seeds = parser.parse_args().seeds
    print(fashion_mnist(), fashion_subset(range(5)), fashion_subset(range(5, 10), 20, 0), sep="\n")
    for seed in range(seeds):
        folder = photo_crops(seed)
        accuracy = svc_accuracy(*load_crops(folder, "train"), *load_crops(folder, "test"), seed)
        print(f"{folder}: SVC test accuracy {accuracy:.4f} (chance {1 / len(PHOTOS):.2f})", flush=True)


if __name__ == "__main__":
    main()
