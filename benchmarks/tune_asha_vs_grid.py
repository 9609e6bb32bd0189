"""ASHA against a full grid on the same 16-point lr x batch-size space, and a grid-tuned SVC, on digits.

Goals (issue 4): ASHA's best test accuracy within 0.3 points of the grid's best while using at most
40 % of the grid's training epochs; the tune job at least matches an SVC tuned by 5-fold CV on the
non-test data and scored on the same test split.
"""

import csv
import json
import sys
import tempfile
import time
from pathlib import Path

from augtrain.config.spec import load_job
from augtrain.datasets.collect import collect
from augtrain.datasets.format import split_files
from augtrain.recipes.tune import tune_job
from common import record
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC

JOB = Path(__file__).resolve().parents[1] / "jobs" / "digits_cnn_tune.yaml"


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
    work = Path(tempfile.mkdtemp(prefix="augtrain-bench-"))
    common = [f"run.storage_path={work / 'runs'}", f"data.path={work / 'digits'}", *sys.argv[1:]]
    dataset = collect(load_job(JOB, common).data).path
    svc = svc_test_accuracy(dataset)
    grid_acc, grid_epochs, grid_wall = sweep([*common, "tune.scheduler.name=none"])
    asha_acc, asha_epochs, asha_wall = sweep(common)
    print(f"grid: test {grid_acc:.4f}, {grid_epochs} epochs, {grid_wall:.0f} s")
    print(f"asha: test {asha_acc:.4f}, {asha_epochs} epochs, {asha_wall:.0f} s")
    print(f"svc (C x gamma, 5-fold CV): test {svc:.4f}")
    gap = (grid_acc - asha_acc) * 100
    record("tune_asha_accuracy_gap", f"gap={gap:.2f}pt (asha {asha_acc:.4f}, grid {grid_acc:.4f})", "<=0.3pt", gap <= 0.3)
    ratio = asha_epochs / grid_epochs
    record("tune_asha_epochs", f"ratio={ratio:.2f} ({asha_epochs}/{grid_epochs} epochs)", "<=0.40", ratio <= 0.40)
    record("tune_asha_wall", f"ratio={asha_wall / grid_wall:.2f} ({asha_wall:.0f}/{grid_wall:.0f} s)", "none", None)
    record("tune_vs_svc", f"ratio={asha_acc / svc:.4f} (tune job {asha_acc:.4f}, svc {svc:.4f})", ">=1.0", asha_acc >= svc)


if __name__ == "__main__":
    main()
