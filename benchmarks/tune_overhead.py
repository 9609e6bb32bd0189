"""Issues 7 and 24: what a Ray Tune sweep adds on top of its trials' own compute.

A 4-trial grid (lr) of the digits CNN tune job, 15 epochs each, no early stopping, as many trials at once
as the plan fits (one on 2 CPUs). A trial's own compute is its epochs x its median epoch compute (train
pass + validation pass, timed inside the train loop). The sweep's wall time (Ray already up, the dataset
collected) covers everything else: trial and worker-group start-up, the data streams' start, reporting,
checkpoint I/O, picking and evaluating the best trial. Goal (issue 24): wall / compute <= 1.5, the median
over REPEATS sweeps (issue 23).
"""

import statistics
import tempfile
import time
from pathlib import Path

from augtrain.config.spec import load_job
from augtrain.recipes.rundir import prepare_dataset
from augtrain.recipes.tune import tune_job
from augtrain.training.checkpoint import read_history
from common import at_most, paired_ratio, record

JOB = Path(__file__).resolve().parents[1] / "jobs" / "digits_cnn_tune.yaml"
EPOCHS = 15
LRS = [0.001, 0.002, 0.003, 0.005]
REPEATS = 3
GOAL = at_most(1.5)


def trial_histories(run_dir: Path) -> list[list[dict]]:
    """Every trial's epochs, from the newest checkpoint each trial kept."""
    return [
        max((read_history(c) for c in trial.glob("train/checkpoint_*") if c.is_dir()), key=len)
        for trial in sorted((run_dir / "trials").iterdir())
    ]


def main() -> None:
    walls, computes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(REPEATS):
            job = load_job(JOB, [
                f"run.storage_path={tmp}/runs{repeat}", f"data.path={tmp}/digits", f"train.epochs={EPOCHS}",
                f"tune.space={{train.lr: {{grid: {LRS}}}, train.batch_size: {{grid: [32]}}}}",
                "tune.scheduler.name=none",
            ])
            prepare_dataset(job, None, print)  # Ray up, data collected, stats cached: not the sweep's cost
            start = time.perf_counter()
            run_dir = tune_job(job, echo=lambda line: None)
            walls.append(time.perf_counter() - start)
            histories = trial_histories(run_dir)
            assert len(histories) == len(LRS) and all(len(h) == EPOCHS for h in histories)
            computes.append(sum(len(h) * statistics.median(e["train_s"] + e["val_s"] for e in h) for h in histories))
            print(f"#{repeat + 1}: sweep wall {walls[-1]:.1f} s, trials' compute {computes[-1]:.1f} s", flush=True)
    ratio, text = paired_ratio(walls, computes, GOAL)
    record("tune_overhead", f"{text}; sweep wall {statistics.median(walls):.1f} s, trials' own compute "
           f"{statistics.median(computes):.1f} s, medians; {len(LRS)} trials x {EPOCHS} epochs, one at a time, "
           f"{REPEATS} sweeps on one Ray)", GOAL, ratio)


if __name__ == "__main__":
    main()
