#!/usr/bin/env bash
# Profile the training process of the main digits job in steady state (issue 7: the worst stage). One CPU
# worker trains in the `augtrain run` process itself (training/local.py), so that is the process sampled.
# Usage: benchmarks/profile_train_worker.sh [OUT.txt]   (from the repo root, after `make test` set up .venv)
# Starts an 80-epoch run, waits for epoch 3, samples the run's process with py-spy for 10 s at 200 Hz
# (collapsed stacks in OUT.txt), and prints the share of samples in each phase of the train loop.
set -euo pipefail
out=${1:-train_worker_profile.txt}
work=$(mktemp -d)
log=$work/run.log
.venv/bin/augtrain run jobs/digits_cnn.yaml train.epochs=80 run.storage_path="$work/runs" >"$log" 2>&1 &
run=$!
until grep -q "epoch 3/" "$log"; do kill -0 $run 2>/dev/null || { cat "$log"; exit 1; }; sleep 0.5; done
.venv/bin/py-spy record -p "$run" -d 10 -r 200 -f raw -o "$out" --nonblocking >/dev/null
wait $run
.venv/bin/python - "$out" <<'PY'
import collections, sys
phases = {  # frame substrings, checked in order: the first match names the sample's phase
    "forward (train and val)": "forward (", "backward": "backward (", "optimizer step": "step (",
    "waiting for the next batch": "take_rows (", "rest (metrics, validation, checkpoint, report)": "train_loop (",
}
total, seen, other = 0, collections.Counter(), collections.Counter()
for line in open(sys.argv[1]):
    stack, n = line.rsplit(" ", 1)
    n = int(n)
    total += n
    if "train_loop (" not in stack:
        other[stack.split(";")[-1][:80]] += n
        continue
    seen[next(name for name, key in phases.items() if key in stack)] += n
print(f"{total} samples; train loop thread:")
for name in phases:
    print(f"  {seen[name] / total:6.1%}  {name}")
print("other threads (Ray Data prefetch, collate, Ray core), top 5 leaf frames:")
for frame, n in other.most_common(5):
    print(f"  {n / total:6.1%}  {frame}")
PY
rm -rf "$work"
