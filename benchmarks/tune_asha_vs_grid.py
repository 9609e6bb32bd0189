"""ASHA against a full grid on the same 16-point lr x batch-size space, and a grid-tuned SVC, on digits.

Goals (issue 4): ASHA's best test accuracy within 0.3 points of the grid's best (the mean over 3 seeded pairs
of sweeps, issue 24) while using at most 40 % of the grid's training epochs; the tune job at least matches an SVC tuned by 5-fold CV on the
non-test data and scored on the same test split.
"""

import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from augtrain.config.spec import load_job
from augtrain.datasets.collect import collect
from augtrain.datasets.format import split_files
from augtrain.recipes.tune import tune_job
from augtrain.training.runtime import start_ray
from common import at_least, at_most, record, repeated
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC

JOB = Path(__file__).resolve().parents[1] / "jobs" / "digits_cnn_tune.yaml"
SEEDS = (0, 1, 2)
EPOCHS_GOAL = at_most(0.40)


def svc_test_accuracy(dataset_dir: str) -> float:
    """SVC tuned on C x gamma by 5-fold CV over train+val, scored on the collected test split."""
    import pyarrow.parquet as pq

    digits = load_digits()
    ids = {split: [int(i.split("/")[1]) for i in pq.read_table(split_files(dataset_dir, split)).column("id").to_pylist()]
           for split in ("train", "val", "test")}
    fit_rows = ids["train"] + ids["val"]
    search = GridSearchCV(SVC(), {"C": [1, 3, 10, 30, 100], "gamma": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]}, cv=5, n_jobs=1)
    search.fit(digits.data[fit_rows], digits.target[fit_rows])
    return float(search.score(digits.data[ids["test"]], digits.target[ids["test"]]))


def sweep(overrides: list[str]) -> tuple[float, int, float]:
    """(test accuracy of the best trial, total epochs trained, wall seconds)."""
    start = time.perf_counter()
    run_dir = tune_job(load_job(JOB, overrides))
    wall = time.perf_counter() - start
    with (run_dir / "trials.csv").open() as rows:
        epochs = sum(int(r["epochs_run"]) for r in csv.DictReader(rows))
    return json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"], epochs, wall


def main() -> None:
    """Both sweeps at each of SEEDS (train.seed: the same split, other initial weights, batch orders and
    augmentations), alternating grid and ASHA; rows carry the mean and the spread over the seeds."""
    work = Path(tempfile.mkdtemp(prefix="augtrain-bench-"))
    common = [f"run.storage_path={work / 'runs'}", f"data.path={work / 'digits'}", *sys.argv[1:]]
    start_ray()
    dataset = collect(load_job(JOB, common).data).path
    svc = svc_test_accuracy(dataset)
    runs = []
    for seed in SEEDS:
        grid = sweep([*common, f"train.seed={seed}", "tune.scheduler.name=none"])
        asha = sweep([*common, f"train.seed={seed}"])
        runs.append((grid, asha))
        print(f"seed {seed}: grid test {grid[0]:.4f} ({grid[1]} epochs, {grid[2]:.0f} s), "
              f"asha test {asha[0]:.4f} ({asha[1]} epochs, {asha[2]:.0f} s)", flush=True)
    print(f"svc (C x gamma, 5-fold CV): test {svc:.4f}")
    gaps = [(grid[0] - asha[0]) * 100 for grid, asha in runs]
    gap, spread = statistics.mean(gaps), f"{min(gaps):.2f} to {max(gaps):.2f}"
    accuracies = [f"{asha[0]:.4f}/{grid[0]:.4f}" for grid, asha in runs]
    record("tune_asha_accuracy_gap", f"gap={gap:.2f}pt mean of seeds {list(SEEDS)} (spread {spread}; asha/grid test "
           f"{', '.join(accuracies)})", at_most(0.3), gap)
    ratio, text = repeated("ratio", [asha[1] / grid[1] for grid, asha in runs], EPOCHS_GOAL)
    record("tune_asha_epochs", f"{text}; {', '.join(f'{asha[1]}/{grid[1]}' for grid, asha in runs)} epochs)",
           EPOCHS_GOAL, ratio)
    _, text = repeated("ratio", [asha[2] / grid[2] for grid, asha in runs])
    record("tune_asha_wall", f"{text}; {', '.join(f'{asha[2]:.0f}/{grid[2]:.0f}' for grid, asha in runs)} s)", None)
    asha_mean = statistics.mean(asha[0] for _, asha in runs)
    each = ", ".join(f"{asha[0]:.4f}" for _, asha in runs)
    record("tune_vs_svc", f"ratio={asha_mean / svc:.4f} (tune job {asha_mean:.4f} mean of seeds {list(SEEDS)} ({each}), "
           f"svc {svc:.4f}, deterministic: fitted once)", at_least(1.0), asha_mean / svc)


if __name__ == "__main__":
    main()
