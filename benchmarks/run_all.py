"""Run the benchmarks one after another and judge them: each script's `BENCH ... PASS|FAIL|INFO` lines are
collected, a summary is printed last, and the exit status is 1 if any row FAILed or any script crashed.

    python run_all.py            every benchmark (`make bench`; over 3 hours on 2 CPUs, see the README)
    python run_all.py --quick    the few that take minutes, for use before every resolve (`make bench-quick`)
    python run_all.py SCRIPT...  those scripts

Scripts that read the team's datasets (the Free Spoken Digit Dataset at fsdd.RECORDINGS, Kim 2014's text
files at text_corpora.FOLDER) are skipped, and said so, where they are absent (a fresh clone has none).
The image benchmarks (image_accuracy.py, collect_order.py, train_flops.py) make their data from Debian
packages on their first run (image_data.py: `apt-get download`, which needs apt's package lists).
"""

import argparse
import subprocess
import sys
from pathlib import Path

from fsdd import RECORDINGS
from text_corpora import FOLDER

HERE = Path(__file__).resolve().parent
# not benchmarks: shared code, data makers, and memory_by_process.py (a diagnosis without a verdict)
HELPERS = {"common.py", "fsdd.py", "text_corpora.py", "wordnet_vectors.py", "image_data.py", "run_all.py",
           "memory_by_process.py"}
QUICK = ["predict_small.py", "cli_startup.py", "augment_stage.py", "train_overhead.py", "tune_overhead.py"]
NEEDS = {"audio_accuracy.py": RECORDINGS, "audio_augment_stage.py": RECORDINGS, "text_accuracy.py": FOLDER}


def run(script: str) -> tuple[list[str], int]:
    """(the script's BENCH lines, its exit status), its output passed through as it comes."""
    process = subprocess.Popen([sys.executable, script], cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    lines = []
    for line in process.stdout:
        print(line, end="", flush=True)
        if line.startswith("BENCH "):
            lines.append(line.strip())
    return lines, process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only " + ", ".join(QUICK))
    parser.add_argument("scripts", nargs="*")
    args = parser.parse_args()
    scripts = args.scripts or (QUICK if args.quick else sorted(p.name for p in HERE.glob("*.py") if p.name not in HELPERS))
    verdicts, problems = [], []
    for script in scripts:
        if script in NEEDS and not NEEDS[script].is_dir():
            problems.append(f"SKIPPED {script}: no {NEEDS[script]} (no verdict)")
            continue
        print(f"== {script}", flush=True)
        lines, code = run(script)
        verdicts += [(script, line) for line in lines]
        if code:
            problems.append(f"CRASHED {script}: exit status {code}")
    print("\n== summary")
    for script, line in verdicts:
        print(f"{line.rsplit(' ', 1)[1]:4s} {line.split()[1]} ({script})")
    failed = [line.split()[1] for _, line in verdicts if line.endswith(" FAIL")]
    for problem in problems:
        print(problem)
    if failed or any(p.startswith("CRASHED") for p in problems):
        print(f"bench: {len(failed)} FAIL ({', '.join(failed) or 'none'}), "
              f"{sum(p.startswith('CRASHED') for p in problems)} crashed")
        return 1
    print(f"bench: no FAIL in {len(verdicts)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
