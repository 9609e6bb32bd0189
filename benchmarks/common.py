"""Shared by the benchmarks: the machine line and the RESULTS.md row every benchmark writes."""

import datetime
import os
import platform as stdlib_platform
import sys
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = "| date | benchmark | result | goal | pass | machine | command |\n|---|---|---|---|---|---|---|\n"


def machine() -> str:
    import ray
    import torch

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} CPU, {memory:.0f} GiB, Python {stdlib_platform.python_version()}, "
        f"torch {torch.__version__}, ray {ray.__version__}"
    )


def record(name: str, result: str, goal: str, passed: bool) -> None:
    """Print the BENCH line and append a row to RESULTS.md."""
    verdict = "PASS" if passed else "FAIL"
    print(f"BENCH {name} {result} goal={goal} {verdict}", flush=True)
    if not RESULTS.exists() or "| date |" not in RESULTS.read_text():
        RESULTS.write_text("# Benchmark results\n\nRows are appended by `make bench` (newest last).\n\n" + HEADER)
    command = " ".join(["cd benchmarks && PYTHONPATH=. python", Path(sys.argv[0]).name, *sys.argv[1:]])
    row = f"| {datetime.date.today()} | {name} | {result} | {goal} | {verdict} | {machine()} | `{command}` |\n"
    with RESULTS.open("a") as out:
        out.write(row)
