"""Shared by the benchmarks: the machine line and the RESULTS.md row every benchmark writes."""

import datetime
import os
import platform as stdlib_platform
import statistics
import subprocess
import sys
import threading
import time
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


def record(name: str, result: str, goal: str, passed: bool | None) -> None:
    """Print the BENCH line and append a row to RESULTS.md; `passed=None` is a figure without a goal (INFO)."""
    verdict = "INFO" if passed is None else "PASS" if passed else "FAIL"
    print(f"BENCH {name} {result} goal={goal} {verdict}", flush=True)
    if not RESULTS.exists() or "| date |" not in RESULTS.read_text():
        RESULTS.write_text("# Benchmark results\n\nRows are appended by `make bench` (newest last).\n\n" + HEADER)
    command = " ".join(["cd benchmarks && PYTHONPATH=. python", Path(sys.argv[0]).name, *sys.argv[1:]])
    row = f"| {datetime.date.today()} | {name} | {result} | {goal} | {verdict} | {machine()} | `{command}` |\n"
    with RESULTS.open("a") as out:
        out.write(row)


def paired_ratio(ours: list[float], theirs: list[float]) -> tuple[float, str]:
    """The median of the ratios of alternated repetitions (ours[i] / theirs[i]) and the row's text for it,
    `ratio=M (spread LO-HI`, left open for the rest of the row."""
    ratios = [a / b for a, b in zip(ours, theirs)]
    ratio = statistics.median(ratios)
    return ratio, f"ratio={ratio:.2f} (spread {min(ratios):.2f}-{max(ratios):.2f}"


def process_tree(root: int) -> list[int]:
    """`root` and every descendant process id (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
            children.setdefault(int(rest.rsplit(") ", 1)[1].split()[1]), []).append(int(pid))
        except (OSError, IndexError, ValueError):
            continue
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_pss(root: int) -> int:
    """PSS bytes of `root` and every descendant process (shared pages split among the processes that map them)."""
    total = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def measured(command: list[str], output, env: dict | None = None, watch=None) -> tuple[float, int, int, object]:
    """Run `command` as a fresh process writing to `output`, sampling the PSS of its process tree every
    0.25 s: (wall seconds, exit code, peak PSS bytes, the first non-None `watch(pid)` of the samples)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    peak, seen = [0], [None]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], tree_pss(process.pid))
            if watch is not None and seen[0] is None:
                seen[0] = watch(process.pid)
            time.sleep(0.25)

    sampler = threading.Thread(target=sample)
    sampler.start()
    code = process.wait()
    wall = time.perf_counter() - start
    sampler.join()
    return wall, code, peak[0], seen[0]
