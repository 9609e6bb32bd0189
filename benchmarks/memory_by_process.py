"""Issue 23, a diagnosis, not a verdict: where `data_scaling.py`'s peak memory sits, process by process.

Runs the same `augtrain run` as data_scaling.py at one scale (its .npz made the same way), samples the PSS of
every process in the run's tree every 0.5 s, and prints the run's lines with their times and, at the peak,
the largest processes. Extra arguments are overrides of the job; environment variables (Ray Data's, for
instance) reach the run as they are.

    cd benchmarks && PYTHONPATH=. python memory_by_process.py SCALE [dotted.path=value ...]
"""

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import process_tree, pss
from data_scaling import JOB, OVERRIDES, scaled_digits

SHOWN = 6  # processes listed at the peak


def name(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return str(pid)
    return f"{pid} {command[:50].strip()}"


def main() -> None:
    scale, overrides = int(sys.argv[1]), sys.argv[2:]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / f"digits_x{scale}.npz"
        print(f"{scale}x: {scaled_digits(scale, source) / 2**20:.0f} MiB of decoded images", flush=True)
        command = [sys.executable, "-m", "augtrain.cli", "run", str(JOB), f"data.source={source}",
                   f"data.path={tmp}/collected", f"run.storage_path={tmp}/runs", *OVERRIDES, *overrides]
        start = time.perf_counter()
        run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def lines() -> None:
            for line in run.stdout:
                print(f"{time.perf_counter() - start:6.1f} s  {line.rstrip()[:120]}", flush=True)

        reader = threading.Thread(target=lines)
        reader.start()
        peak, at, largest = 0, 0.0, []
        while run.poll() is None:
            sizes = {pid: pss(pid) for pid in process_tree(run.pid)}
            if sum(sizes.values()) > peak:
                peak, at = sum(sizes.values()), time.perf_counter() - start
                largest = [(size, name(pid)) for pid, size in sorted(sizes.items(), key=lambda item: -item[1])[:SHOWN]]
            time.sleep(0.5)
        reader.join()
    print(f"peak {peak / 2**20:.0f} MiB at {at:.1f} s (exit {run.returncode}):")
    for size, process in largest:
        print(f"  {size / 2**20:6.0f} MiB  {process}")


if __name__ == "__main__":
    main()
