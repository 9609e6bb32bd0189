"""Issue 16: the long run of the reader fuzzer (tests/fuzz.py; the suite runs 2,000 mutations).

50,000 seeded mutations of PNG, JPEG, TIFF and `.ts` bytes through the readers `collect` and
`predict` use. Goal: 0 escapes (every input a sample, a quarantine reason or one SourceError).
Usage: fuzz_readers.py [COUNT] [SEED]
"""

import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import at_most, record  # noqa: E402
from fuzz import fuzz  # noqa: E402


def main(count: int = 50_000, seed: int = 1) -> None:
    warnings.simplefilter("ignore")  # mutated files make Pillow warn about their metadata, by design
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        report = fuzz(count, seed, Path(folder))
    took = time.perf_counter() - start
    for escape in report.escapes[:5]:
        print(escape, file=sys.stderr)
    kinds = ", ".join(f"{name} {n}" for name, n in report.outcomes.most_common(6))
    record(
        "fuzz_readers_escapes",
        f"escapes={len(report.escapes)} ({count} mutations, seed {seed}, {took:.0f} s, slowest input "
        f"{report.slowest * 1000:.0f} ms; {kinds})",
        at_most(0),
        len(report.escapes),
    )


if __name__ == "__main__":
    main(*map(int, sys.argv[1:3]))
