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
from typing import NamedTuple

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


class Goal(NamedTuple):
    """A verdict's bound: a figure must be at most (or at least) `bound`."""

    bound: float
    at_most: bool

    def __str__(self) -> str:
        return f"{'<=' if self.at_most else '>='}{self.bound:g}"

    def met(self, value: float) -> bool:
        return value <= self.bound if self.at_most else value >= self.bound


def at_most(bound: float) -> Goal:
    return Goal(bound, True)


def at_least(bound: float) -> Goal:
    return Goal(bound, False)


def record(name: str, result: str, goal: Goal | None, value: float | None = None) -> bool:
    """Print the BENCH line and append a row to RESULTS.md; PASS if `value` meets `goal`, FAIL if not, INFO
    for a figure without a goal. Returns whether it failed."""
    verdict = "INFO" if goal is None else "PASS" if goal.met(value) else "FAIL"
    goal_text = "none" if goal is None else str(goal)
    print(f"BENCH {name} {result} goal={goal_text} {verdict}", flush=True)
    if not RESULTS.exists() or "| date |" not in RESULTS.read_text():
        RESULTS.write_text("# Benchmark results\n\nRows are appended by `make bench` (newest last).\n\n" + HEADER)
    command = " ".join(["cd benchmarks && PYTHONPATH=. python", Path(sys.argv[0]).name, *sys.argv[1:]])
    row = f"| {datetime.date.today()} | {name} | {result} | {goal_text} | {verdict} | {machine()} | `{command}` |\n"
    with RESULTS.open("a") as out:
        out.write(row)
    return verdict == "FAIL"


def repeated(label: str, values: list[float], goal: Goal | None = None, digits: int = 2) -> tuple[float, str]:
    """The median of repeated measurements and the row's text for it, `LABEL=M (median of N, spread LO-HI`,
    flagged when the goal lies inside the spread (the repetitions disagree on the verdict); left open for the
    rest of the row."""
    median, low, high = statistics.median(values), min(values), max(values)
    text = f"{label}={median:.{digits}f} (median of {len(values)}, spread {low:.{digits}f}-{high:.{digits}f}"
    if goal is not None and goal.met(low) != goal.met(high):
        text += ", NOISY: the spread crosses the goal"
    return median, text


def paired_ratio(ours: list[float], theirs: list[float], goal: Goal | None = None) -> tuple[float, str]:
    """`repeated` for the ratios of alternated repetitions, ours[i] / theirs[i]."""
    return repeated("ratio", [a / b for a, b in zip(ours, theirs)], goal)


def alternated(sides: dict, passes: int) -> dict[str, list[float]]:
    """Items per second of each side's passes (a side is a callable that runs one pass and returns its item
    count): one warm-up pass of each (worker start, imports), then `passes` timed passes alternating."""
    for run_pass in sides.values():
        run_pass()
    rates = {side: [] for side in sides}
    for _ in range(passes):
        for side, run_pass in sides.items():
            start = time.perf_counter()
            items = run_pass()
            rates[side].append(items / (time.perf_counter() - start))
    return rates


def encoded_batches(dataset: str, size: int, extra):
    """(a batch's encoded samples of the collected train split, extra) for a pool's workers, in file order."""
    import pyarrow.parquet as pq
    from augtrain.datasets.format import split_files

    for file in split_files(dataset, "train"):
        for batch in pq.ParquetFile(file).iter_batches(size, columns=["x"]):
            yield batch.column("x").to_pylist(), extra


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


def pss(pid: int) -> int:
    """PSS bytes of one process (shared pages split among the processes that map them); 0 once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0
    return sum(int(line.split()[1]) * 1024 for line in lines if line.startswith("Pss:"))


def tree_pss(root: int) -> int:
    """PSS bytes of `root` and every descendant process."""
    return sum(pss(pid) for pid in process_tree(root))


def measured(command: list[str], output, env: dict | None = None, watch=None,
             sampled: bool = True) -> tuple[float, int, int, object]:
    """Run `command` as a fresh process writing to `output`, sampling the PSS of its process tree every
    0.25 s: (wall seconds, exit code, peak PSS bytes, the first non-None `watch(pid)` of the samples).
    Not `sampled`: nothing watches it (peak 0, no `watch`), so a command that keeps every CPU busy loses
    none to the sampler (collect_scaling.py says how much that was)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    peak, seen = [0], [None]

    def sample() -> None:
        while sampled and process.poll() is None:
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
