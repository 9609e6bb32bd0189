"""Issue 22: image models on real photographs with scarce data, on Fashion-MNIST, and transfer between runs.

- photo_crops: jobs/photo_crops_resnet.yaml on the crops of real photographs (image_data.photo_crops: 440
  train / 160 test, four kinds of scene) against an RBF SVC on colour histograms + downsampled pixels tuned by
  cross-validation on the same train crops, scored on the same test crops; seeds 0-2 (crops, split and
  training). Goal: augtrain's mean >= the SVC's mean.
- fashion: jobs/fashion_resnet.yaml (in bf16 with channels_last, to fit 15 epochs into an hour here) on
  Fashion-MNIST's official test split, the seed CNN (`cnn`, fp32) beside it with the same data, augmentation
  and epochs. Goal >= 93.5 %.
- transfer: fashion_resnet pretrained on classes 0-4 (all 30,000 train images), then fine-tuned
  (model.init_from; the head fresh, every layer at the same lr: the backbone frozen for 5 epochs, then at a
  tenth of the lr, scored 77.7 % on seeds 0-2, under scratch's 88.3 %) on classes 5-9 with 20 labelled
  training images per class, against the same job from scratch; tested on all 5,000 test images of classes
  5-9; seeds 0-2 (the 20 images and training). Goal: fine-tuned mean >= scratch mean + 10 points.
- transfer_ceiling: the same job (bf16, channels_last) trained on every train image of classes 5-9 (30,000,
  300 times the fine-tuning data), tested on the same 5,000 test images: what full supervision reaches on
  these classes, beside the transfer goal (INFO, no goal of its own).

    cd benchmarks && PYTHONPATH=. python image_accuracy.py [CASE ...]

The data is made from Debian packages by image_data.py (apt-get download; made once, under data/ at the root).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from augtrain.config.spec import load_job
from augtrain.recipes.run import run_job
from common import at_least, record
from image_data import (
    fashion_mnist,
    fashion_subset,
    load_crops,
    photo_crops,
    svc_accuracy,
)

JOBS = Path(__file__).resolve().parents[1] / "jobs"
SEEDS = (0, 1, 2)
SEED_LIST = ", ".join(map(str, SEEDS))
FEW = 20  # labelled training images per class to fine-tune on
FINE_TUNE = ["train.epochs=30", "train.lr=0.001", "train.batch_size=16", "train.select=last"]
PRETRAIN_EPOCHS = 4
FAST = ["train.precision=bf16", "train.channels_last=true"]  # resnet_small on all of Fashion-MNIST: 3.2 min an epoch, not 5


def accuracy(job_file: str, overrides: list[str], work: Path) -> tuple[float, Path]:
    """(test accuracy, run dir) of a job run with `overrides`, its runs and data under `work`."""
    job = load_job(JOBS / job_file, [*overrides, f"run.storage_path={work / 'runs'}"])
    run_dir = run_job(job, echo=lambda line: print(line, flush=True))
    return json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"], run_dir


def listed(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def photos(work: Path) -> None:
    ours, svc = [], []
    for seed in SEEDS:
        folder = photo_crops(seed)
        ours.append(accuracy("photo_crops_resnet.yaml", [f"data.source={folder}", f"data.path={work / folder.name}",
                                                         f"data.seed={seed}", f"train.seed={seed}"], work)[0])
        svc.append(svc_accuracy(*load_crops(folder, "train"), *load_crops(folder, "test"), seed))
        print(f"photo crops seed {seed}: augtrain {ours[-1]:.4f}, SVC {svc[-1]:.4f}", flush=True)
    mean, baseline = statistics.mean(ours), statistics.mean(svc)
    record("photo_crops_resnet", f"test={mean:.4f} mean of seeds {SEED_LIST} ({listed(ours)}), SVC on colour "
           f"histograms + 16x16 pixels tuned by 5-fold CV {baseline:.4f} ({listed(svc)}) on the same 160 test crops; "
           "440 train crops of real photographs, 4 classes, 64x64", at_least(baseline), mean)


def fashion(work: Path) -> None:
    source = [f"data.source={fashion_mnist()}", f"data.path={work / 'fashion'}"]
    ours, _ = accuracy("fashion_resnet.yaml", [*source, *FAST], work)
    seed_cnn, _ = accuracy("fashion_resnet.yaml", [*source, "model.name=cnn", "model.params={dropout: 0.2}"], work)
    record("fashion_mnist_resnet_small", f"test={ours:.4f} (resnet_small, bf16, channels_last) on the official "
           f"10,000 test images; the seed CNN (fp32) {seed_cnn:.4f} with the same data, augmentation and 15 epochs",
           at_least(0.935), ours)


def transfer(work: Path) -> None:
    _, pretrained = accuracy("fashion_resnet.yaml", [f"data.source={fashion_subset(range(5))}",
                                                     f"data.path={work / 'fashion_01234'}",
                                                     f"train.epochs={PRETRAIN_EPOCHS}"], work)
    tuned, scratch = [], []
    for seed in SEEDS:
        few = [f"data.source={fashion_subset(range(5, 10), FEW, seed)}", f"data.path={work / f'few{seed}'}",
               f"train.seed={seed}", *FINE_TUNE]
        tuned.append(accuracy("fashion_resnet.yaml", [*few, f"model.init_from={pretrained}"], work)[0])
        scratch.append(accuracy("fashion_resnet.yaml", few, work)[0])
        print(f"transfer seed {seed}: fine-tuned {tuned[-1]:.4f}, from scratch {scratch[-1]:.4f}", flush=True)
    mean, baseline = statistics.mean(tuned), statistics.mean(scratch)
    record("transfer_fashion_0-4_to_5-9", f"test={mean:.4f} fine-tuned (init_from the 0-4 run, {PRETRAIN_EPOCHS} "
           f"epochs) mean of seeds {SEED_LIST} ({listed(tuned)}), from scratch {baseline:.4f} ({listed(scratch)}); "
           f"{FEW} training images per class of 5-9, all 5,000 test images of 5-9", at_least(baseline + 0.10), mean)


def transfer_ceiling(work: Path) -> None:
    full, _ = accuracy("fashion_resnet.yaml", [f"data.source={fashion_subset(range(5, 10))}",
                                               f"data.path={work / 'fashion_56789'}", *FAST], work)
    record("transfer_ceiling_full_data_5-9", f"test={full:.4f} trained on all 30,000 train images of classes 5-9 "
           "(fashion_resnet, bf16, channels_last, 15 epochs), all 5,000 test images of 5-9: what full supervision "
           "reaches where the transfer case fine-tunes on 100 images", None, full)


CASES = {"photo_crops": photos, "transfer": transfer, "transfer_ceiling": transfer_ceiling, "fashion": fashion}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"of {', '.join(CASES)} (default: all)")
    cases = parser.parse_args().cases or list(CASES)
    if set(cases) - set(CASES):
        parser.error(f"unknown case(s) {sorted(set(cases) - set(CASES))}")
    work = Path(tempfile.mkdtemp(prefix="augtrain-images-"))
    for name in cases:
        CASES[name](work)


if __name__ == "__main__":
    main()
