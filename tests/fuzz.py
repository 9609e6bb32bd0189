"""A seeded mutation fuzzer for the readers `collect` and `predict` use on untrusted files.

Seeds are real files (digits as PNG, JPEG, TIFF; a two-class `.ts`); each mutation flips bits, writes
boundary values, cuts, inserts, repeats or deletes bytes. Every mutated file must end as a sample,
a quarantine reason or, for a whole file (a `.ts` whose header breaks), one SourceError: anything
else that escapes the reader is a defect. Used by tests/test_fuzz.py (a bounded run) and
benchmarks/fuzz_readers.py (a long one).
"""

from __future__ import annotations

import io
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from augtrain.config.spec import Data
from augtrain.datasets.sources import SourceError
from augtrain.modalities import read_source
from augtrain.modalities.image.read import read_image
from PIL import Image

BOUNDARY = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x00"]


def seeds() -> dict[str, bytes]:
    """Small real files of every format the fuzz covers."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    grey = Image.fromarray(np.round(digits.images[0] * 255 / 16).astype(np.uint8))
    rgb = Image.merge("RGB", [grey, Image.fromarray(np.round(digits.images[1] * 255 / 16).astype(np.uint8)), grey])
    out = {}
    for name, image, fmt, options in [
        ("grey.png", grey, "PNG", {}), ("rgb.png", rgb.resize((32, 32)), "PNG", {}),
        ("rgb.jpg", rgb.resize((32, 32)), "JPEG", {"quality": 90}), ("grey.tiff", grey, "TIFF", {}),
        ("rgb.tiff", rgb.resize((16, 16)), "TIFF", {"compression": "tiff_lzw"}),
    ]:
        buffer = io.BytesIO()
        image.save(buffer, fmt, **options)
        out[name] = buffer.getvalue()
    rows = [",".join(f"{v:.3f}" for v in digits.data[i][:24] / 16) + f":{'ab'[digits.target[i] % 2]}" for i in range(12)]
    header = "@problemName Fuzz\n@timeStamps false\n@missing true\n@univariate true\n@equalLength false\n"
    out["toy.ts"] = (header + "@classLabel true a b\n@data\n" + "\n".join(rows) + "\n").encode()
    return out


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to four random edits of `data`."""
    data = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        at = int(rng.integers(0, max(len(data), 1)))
        edit = int(rng.integers(0, 7))
        if edit == 0 and data:
            data[at] ^= 1 << int(rng.integers(0, 8))
        elif edit == 1 and data:
            data[at] = int(rng.integers(0, 256))
        elif edit == 2:
            value = BOUNDARY[int(rng.integers(0, len(BOUNDARY)))]
            data[at : at + len(value)] = value
        elif edit == 3:
            data = data[:at]
        elif edit == 4:
            data[at:at] = rng.integers(0, 256, int(rng.integers(1, 32)), dtype=np.uint8).tobytes()
        elif edit == 5:
            size = int(rng.integers(1, 64))
            data[at:at] = data[at : at + size] * int(rng.integers(1, 8))
        else:
            del data[at : at + int(rng.integers(1, 64))]
    return bytes(data)


@dataclass
class Report:
    outcomes: Counter = field(default_factory=Counter)  # "sample", "quarantined: <kind>", "refused"
    escapes: list[str] = field(default_factory=list)  # what escaped, for which input
    slowest: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.outcomes.values()) + len(self.escapes)


def outcome(path: Path, resize: bool) -> list[str]:
    """What the readers make of one file: per record "sample" or "quarantined: <kind>", or "refused"."""
    if path.suffix == ".ts":
        try:
            _, listing = read_source(Data(source=str(path)))
        except SourceError:
            return ["refused"]
        decoded = [f"quarantined: {reason.split(':')[0]}" if reason else "sample" for *_, reason in listing.decode()]
        return decoded + [f"quarantined: {r.split(':')[0]}" for _, r in listing.rejects]
    data = Data(source=str(path.parent))
    image, reason = read_image(path, data.max_pixels, 3 if "rgb" in path.name else 1, (8, 8), resize)
    if (image is None) == bool(reason == ""):
        raise AssertionError(f"read_image gave image={image is not None} and reason={reason!r}")
    return ["sample"] if not reason else [f"quarantined: {reason.split(':')[0]}"]


def fuzz(count: int, seed: int, folder: Path) -> Report:
    """`count` mutations spread over every seed file, written to `folder` and read back."""
    rng = np.random.default_rng(seed)
    originals = seeds()
    names = sorted(originals)
    report = Report()
    for i in range(count):
        name = names[i % len(names)]
        path = folder / f"{i}-{name}"
        path.write_bytes(mutate(originals[name], rng))
        start = time.perf_counter()
        try:
            report.outcomes.update(outcome(path, resize=bool(i % 2)))
            path.unlink()
        except Exception:  # an escape, the defect this fuzzer exists to find: its input is kept
            report.escapes.append(f"{path}: {traceback.format_exc(limit=-3)}")
        report.slowest = max(report.slowest, time.perf_counter() - start)
    return report
