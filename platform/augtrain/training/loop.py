"""Train: one readable train loop, run by Ray Train's TorchTrainer (DDP across workers) or, for one CPU worker
without restarts, in the process that starts the run (training/local.py)."""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from ray.data import DataContext, ExecutionResources
from ray.data.collate_fn import NumpyBatchCollateFn
from ray.train import (
    Checkpoint,
    CheckpointConfig,
    DataConfig,
    FailureConfig,
    LoggingConfig,
    RunConfig,
    ScalingConfig,
)
from tensorboardX import SummaryWriter
from torch import nn

from augtrain.config.spec import Job, Tune
from augtrain.datasets.storage import is_uri, join, publish
from augtrain.datasets.stream import CollectedData
from augtrain.modalities import Modality
from augtrain.training.checkpoint import (
    load_state,
    load_weights,
    save_state,
    save_weights,
)
from augtrain.training.local import LocalSession
from augtrain.training.parts import (
    head_constraint,
    lr_factors,
    param_groups,
    schedule_factor,
)
from augtrain.training.plan import Plan
from augtrain.training.progress import EpochLog

SCORE = "val_accuracy"
# The object store a train stream may fill ahead of its trainer(s), when its epochs hold more than this: a
# stream left unbounded runs ahead as far as Ray Data's budget (half the store) allows (benchmarks/RESULTS.md)
STREAM_BUFFER = 256 * 2**20
CHUNK_BATCHES = 16  # the train stream reaches the loop in chunks of this many batches (see minibatches)
# per epoch; train_s, val_s: seconds of the train and validation passes (waiting for batches included);
# time: wall clock at the end of validation (consecutive differences are whole epochs: train, validate,
# checkpoint, report)
REPORTED = ("epoch", "train_loss", "train_accuracy", "val_loss", SCORE, "lr", "restarts", "train_s", "val_s", "time")


class ToTensors(NumpyBatchCollateFn):
    """A shipped batch -> model-ready tensors: the train stream's collate_fn (run in Ray Data's prefetch
    threads of the worker), and what the worker calls on its cached val batches every epoch."""

    def __init__(self, stats: dict, modality: Modality):
        super().__init__()
        self.stats, self.modality = stats, modality

    def __call__(self, batch: dict) -> dict:
        x = np.ascontiguousarray(self.modality.model_input(batch["x"], self.stats), dtype=np.float32)
        # a batch straight from the object store is read-only; torch wants to own writable memory
        x = torch.from_numpy(x if x.flags.writeable else x.copy())
        return {"x": x, "y": torch.tensor(batch["y"], dtype=torch.long)}


def loop_config(job: Job, data: CollectedData, plan: Plan, storage: str, samples: int, initial) -> dict:
    """The plain values the workers need (`samples`: training samples per epoch; `initial`: the object store's
    starting weights, or None); the spec stays on the driver."""
    manifest = data.manifest
    return {
        "samples": samples,
        "collate": ToTensors(data.stats, data.modality),
        "tensorboard": join(storage, "tensorboard"),
        "modality": data.modality,
        "model": job.model.name,
        "model_params": dict(job.model.params),
        "initial": initial,
        "shape": manifest["shape"],
        "classes": len(manifest["classes"]),
        "threads": plan.threads_per_worker,
        **job.train.model_dump(),
    }


def ranking(metric: str = SCORE, mode: str = "max"):
    """Sort key for an epoch's metrics: `metric` first, ties to the lower validation loss.

    A validation split of a few hundred samples often ties on accuracy; the loss separates them.
    """
    sign = 1 if mode == "max" else -1
    return lambda metrics: (sign * metrics[metric], -metrics["val_loss"])


def make_optimizer(model: nn.Module, config: dict) -> torch.optim.Optimizer:
    """The optimizer over the (unwrapped) model's parts (training/parts.py: head, backbone, no decay)."""
    name, lr = config["optimizer"], config["lr"]
    groups = param_groups(model, config["weight_decay"], config["backbone_lr"])
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=config["momentum"], nesterov=True)
    if name == "adadelta":
        return torch.optim.Adadelta(groups, lr=lr, rho=0.95, eps=1e-6)
    return {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name](groups, lr=lr)


def make_schedule(optimizer: torch.optim.Optimizer, config: dict) -> torch.optim.lr_scheduler.LambdaLR:
    """Per epoch, each group's lr: the schedule times its share, the backbone frozen for train.freeze_epochs."""
    schedule = schedule_factor(config["schedule"], config["epochs"], config["step_size"], config["gamma"])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factors(optimizer.param_groups, schedule, config["freeze_epochs"]))


def take_rows(stream: Iterator[dict], rows: int, carry: list[dict]) -> Iterator[dict]:
    """The next `rows` rows of a stream of batches; a batch that runs past them is cut, its rest kept in
    `carry` to lead the next call. The train stream carries every epoch (see CollectedData.for_training):
    each epoch takes its rows from it, so every epoch sees as many samples as the split holds."""
    while rows > 0:
        batch = carry.pop() if carry else next(stream, None)
        if batch is None:
            return
        if len(batch["y"]) > rows:
            carry.append({name: column[rows:] for name, column in batch.items()})
            batch = {name: column[:rows] for name, column in batch.items()}
        rows -= len(batch["y"])
        yield batch


def minibatches(chunks: Iterator[dict], batch_size: int) -> Iterator[dict]:
    """Each chunk's rows in a random order, cut into batches of `batch_size` (a chunk's last may be smaller).

    Ray Data's per-batch work (batching, collate) competes with the model for the trainer's GIL and
    CPU: taken a chunk at a time it is paid once per chunk, and shuffling within the chunk stands in
    for Ray's local shuffle buffer of the same size (measurements: benchmarks/RESULTS.md).
    """
    for chunk in chunks:
        order = torch.randperm(len(chunk["y"]), device=chunk["y"].device)
        for rows in order.split(batch_size):
            yield {name: column[rows] for name, column in chunk.items()}


@dataclass
class Totals:
    """Sums over one pass of an epoch, added up across workers before they become means."""

    loss: float = 0.0  # sum of per-sample losses
    correct: float = 0.0
    count: float = 0.0

    def add(self, logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> None:
        n = len(labels)
        self.loss += loss.item() * n
        self.correct += (logits.argmax(1) == labels).sum().item()
        self.count += n


def sum_across_workers(totals: list[Totals], device) -> list[Totals]:
    """Each worker's totals added up over all workers (one all-reduce for them all)."""
    tensor = torch.tensor([v for t in totals for v in (t.loss, t.correct, t.count)], dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    values = tensor.tolist()
    return [Totals(*values[i : i + 3]) for i in range(0, len(values), 3)]


def train_epoch(model, batches: Iterator[dict], optimizer, loss_fn, autocast, constrain: Callable[[], None]) -> Totals:
    """One pass over `batches`; `constrain` follows every step (training/parts.py: head_constraint)."""
    model.train()
    totals = Totals()
    for batch in batches:
        with autocast:
            logits = model(batch["x"])
            loss = loss_fn(logits.float(), batch["y"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        constrain()
        totals.add(logits, batch["y"], loss)
    return totals


def validate(model, val_batches: list[dict], collate, device, autocast) -> Totals:
    """The plain (unsmoothed) loss and accuracy on the worker's cached validation batches."""
    model.eval()
    totals = Totals()
    with torch.no_grad(), autocast:
        for shipped in val_batches:
            batch = {name: tensor.to(device) for name, tensor in collate(shipped).items()}
            logits = model(batch["x"]).float()
            totals.add(logits, batch["y"], nn.functional.cross_entropy(logits, batch["y"]))
    return totals


def save_checkpoint(folder: str, model: nn.Module, optimizer, schedule, progress: dict) -> None:
    """Weights and train state (optimizer, schedule, progress) into `folder`."""
    save_weights(model, folder)
    save_state(folder, {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), **progress})


class WorkerSession:
    """What `train_loop` asks of its runner, on a Ray Train worker (training/local.py: in this process)."""

    def __init__(self):
        context = ray.train.get_context()
        self.rank, self.world_size = context.get_world_rank(), context.get_world_size()
        self.device = ray.train.torch.get_device()

    @staticmethod
    def shards():
        return ray.train.get_dataset_shard("train"), ray.train.get_dataset_shard("val")

    prepare = staticmethod(ray.train.torch.prepare_model)
    restored = staticmethod(ray.train.get_checkpoint)

    @staticmethod
    def report(metrics: dict, folder: str | None) -> None:
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder) if folder else None)

    @staticmethod
    def report_again(metrics: dict) -> None:
        """Report a kept epoch once more, with the path of the newest checkpoint (for a Tune trial), writing nothing."""
        from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY

        ray.train.report({**metrics, CHECKPOINT_PATH_KEY: ray.train.get_checkpoint().path})


def worker_loop(config: dict) -> None:
    """A Ray Train worker's train_loop_per_worker."""
    train_loop(config, WorkerSession())


def train_loop(config: dict, session) -> None:
    """Build, resume, then per epoch train -> validate -> checkpoint + report (`session`: a WorkerSession
    or a training.local.LocalSession)."""
    # Ray Train logs every report at INFO through a logger named by its file path (not under
    # "ray.train"), so only the worker's root level quiets it; the epoch lines are the progress.
    logging.getLogger().setLevel(logging.WARNING)
    torch.set_num_threads(config["threads"])
    torch.manual_seed(config["seed"])
    device = session.device
    # the shards first: on a Train worker each starts a Ray Data coordinator (a new process, ~1 s) while
    # this one builds the model and optimizer (whose first use imports torch._dynamo, ~1 s)
    train_shard, val_shard = session.shards()
    bare = config["modality"].build_model(config["model"], config["model_params"], config["shape"], config["classes"])
    if config["initial"] is not None:  # checked against the model on the driver (training/initial.py)
        bare.load_state_dict({name: torch.tensor(array) for name, array in ray.get(config["initial"]).items()}, strict=False)
    if config["channels_last"]:  # 4-D weights turn NHWC, and with them what each convolution puts out
        bare = bare.to(memory_format=torch.channels_last)
    model = session.prepare(bare)
    optimizer = make_optimizer(bare, config)
    schedule = make_schedule(optimizer, config)
    constrain = head_constraint(bare, config["max_norm"])
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config["label_smoothing"])
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config["precision"] == "bf16")

    # resume: a restarted worker group (or a re-run) continues from the newest checkpoint
    progress = {"epoch": -1, "best": -math.inf, "stale": 0, "history": [], "restarts": 0}
    checkpoint = session.restored()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            load_weights(bare, folder)
            state = load_state(folder)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        progress = {name: state[name] for name in progress}
        progress["restarts"] += 1
        if progress["epoch"] + 1 >= config["epochs"] or out_of_patience(progress, config):
            # it had ended (a sweep killed before Tune saw the trial end reruns it): nothing to train, and its
            # last epoch reported again, for a Tune trial fails without a report of its metric
            session.report_again(progress["history"][-1])
            return

    # one stream carries every epoch, in chunks; each worker's epoch is an equal share of the split
    # (the same number of steps everywhere, for DDP)
    collate, batch_size = config["collate"], config["batch_size"]
    stream = iter(train_shard.iter_torch_batches(batch_size=CHUNK_BATCHES * batch_size, collate_fn=collate, device=device))
    share, carry = config["samples"] // session.world_size, []
    # rank 0 shows the progress and logs every epoch for TensorBoard beside the checkpoints (on a URI
    # storage: into a local folder copied there after every epoch); a resumed run appends a new event file
    board_dir, shown = None, None
    if session.rank == 0:
        board_dir = tempfile.mkdtemp(prefix="tensorboard-") if is_uri(config["tensorboard"]) else config["tensorboard"]
        shown = EpochLog(config["epochs"], share, progress["epoch"] + 1)
    board = SummaryWriter(board_dir) if board_dir else None
    # the val split never changes: fetched once (on this node its blocks are read in place from the
    # object store, where the driver materialized them), collated every epoch
    val_batches = list(val_shard.iter_batches(batch_size=batch_size, batch_format="numpy"))
    try:
        for epoch in range(progress["epoch"] + 1, config["epochs"]):
            started = time.perf_counter()
            batches = minibatches(take_rows(stream, share, carry), batch_size)
            trained = train_epoch(model, shown.counted(batches) if shown else batches, optimizer, loss_fn, autocast,
                                  constrain)
            schedule.step()
            train_s = time.perf_counter() - started
            seen = validate(model, val_batches, collate, device, autocast)
            trained, seen = sum_across_workers([trained, seen], device)
            metrics = {
                "epoch": epoch,
                "train_loss": trained.loss / trained.count,
                "train_accuracy": trained.correct / trained.count,
                "val_loss": seen.loss / seen.count,
                SCORE: seen.correct / seen.count,
                "lr": optimizer.param_groups[0]["lr"],
                "restarts": progress["restarts"],
                "train_s": train_s,
                "val_s": time.perf_counter() - started - train_s,
                "time": time.time(),
            }
            improved = metrics[SCORE] > progress["best"]
            progress.update(epoch=epoch, history=[*progress["history"], metrics], stale=0 if improved else progress["stale"] + 1,
                            best=metrics[SCORE] if improved else progress["best"])

            # checkpoint + report: rank 0 writes, every rank reports
            with tempfile.TemporaryDirectory() as folder:
                if session.rank == 0:
                    save_checkpoint(folder, bare, optimizer, schedule, progress)
                    log_epoch(board, board_dir, config, metrics)
                    shown.epoch(metrics)
                session.report(metrics, folder if session.rank == 0 else None)
            if out_of_patience(progress, config):
                break
    finally:
        if board:
            board.close()
            shown.close()


def out_of_patience(progress: dict, config: dict) -> bool:
    """Whether early stopping (`train.patience` epochs without a better val score) has ended the run."""
    return bool(config["patience"]) and progress["stale"] >= config["patience"]


def log_epoch(board: SummaryWriter, board_dir: str, config: dict, metrics: dict) -> None:
    """Rank 0's epoch in TensorBoard (copied to a URI storage)."""
    for name in ("train_loss", "train_accuracy", "val_loss", SCORE, "lr"):
        board.add_scalar(name, metrics[name], metrics["epoch"] + 1)
    board.flush()
    publish(Path(board_dir), config["tensorboard"])


def in_process(job: Job, plan: Plan) -> bool:
    """Whether a run trains in the process that starts it (training/local.py) rather than on a Ray Train
    worker group: one CPU worker, and no restarts asked for."""
    return plan.workers == 1 and not plan.use_gpu and job.run.max_failures == 0


def fit(job: Job, data: CollectedData, plan: Plan, storage: str, fold=None, trial: Tune | None = None, initial=None):
    """Train `job` (on a k-fold's `fold`), in this process or on a TorchTrainer (see `in_process`), from the
    `initial` weights (training/initial.py) if any; checkpoints go to `storage`/train (a folder or URI), the
    best k by val accuracy kept. A sweep's `trial` (its tune section) reports every epoch to Tune and keeps
    the best k by the sweep's metric. Returns a ray.train.Result (or a LocalResult with the same fields)."""
    # the data workers' share of the CPUs and, for a stream larger than STREAM_BUFFER, of the object store;
    # blocks reach the trainer in the order they were listed (seeded runs)
    context, here = DataContext.get_current(), in_process(job, plan)
    bounded = data.train_samples(fold) * data.sample_bytes() * job.train.epochs > STREAM_BUFFER
    options = context.execution_options
    options.resource_limits = ExecutionResources(cpu=plan.data_cpus, object_store_memory=STREAM_BUFFER if bounded else None)
    options.preserve_order = True
    context.enable_progress_bars &= not here  # the loop's own bar (training/progress.py) stands in for Ray Data's
    datasets, samples = data.for_training(job, plan, fold)
    config = loop_config(job, data, plan, storage, samples, initial)
    metric, mode = (trial.metric, trial.mode) if trial else (SCORE, "max")  # what keeps a checkpoint
    if here:
        if bounded:  # the stream's scheduling loop, held back, polls without pause: out of this process with it
            datasets = {**datasets, "train": datasets["train"].streaming_split(1)[0]}
        tell = None
        if trial:
            from ray import tune
            from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY

            def tell(metrics: dict, path: str) -> None:
                tune.report({**metrics, CHECKPOINT_PATH_KEY: path})

        session = LocalSession(datasets, storage, job.train.keep_checkpoints, ranking(metric, mode), tell)
        train_loop(config, session)
        return session.result()
    callbacks = []
    if trial:
        from ray.tune.integration.ray_train import TuneReportCallback

        callbacks.append(TuneReportCallback())
    trainer = ray.train.torch.TorchTrainer(
        worker_loop,
        train_loop_config=config,
        scaling_config=ScalingConfig(
            num_workers=plan.workers,
            use_gpu=plan.use_gpu,
            placement_strategy=plan.placement.upper(),
            resources_per_worker={"CPU": plan.cpus_per_worker},
        ),
        run_config=RunConfig(
            name="train",
            storage_path=storage,
            failure_config=FailureConfig(max_failures=job.run.max_failures),
            logging_config=LoggingConfig(log_level="WARNING"),  # the epoch lines are the progress
            callbacks=callbacks,
            checkpoint_config=CheckpointConfig(
                num_to_keep=job.train.keep_checkpoints,
                checkpoint_score_attribute=metric,
                checkpoint_score_order=mode,
            ),
        ),
        datasets=datasets,
        dataset_config=DataConfig(execution_options=options),
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    return result
