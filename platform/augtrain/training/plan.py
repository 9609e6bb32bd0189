"""Resource plan: fit training workers and Ray Data workers into the cluster that is found.

A 2-worker TorchTrainer that takes a whole CPU per worker on a 2-CPU machine leaves Ray Data
nothing to run its map stages on and the job hangs. The plan keeps a share of CPU for data
workers, gives training workers the rest (fractions allowed) and caps Ray Data at its share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from augtrain.config.spec import WorkerScaling
from augtrain.errors import BadInput

# Ray sizes a restarted elastic group by the free CPUs alone (README, Failures)
ELASTIC_CAVEAT = "; a restarted elastic group takes as many workers as free CPUs hold, which can leave Ray Data none: keep a spare node"
DRIVER_CPU = 0.01  # a run's driver (trial, fold) only waits on its Train run; Ray refuses 0 resources


class PlanError(BadInput):
    """The requested scaling cannot fit the cluster."""


@dataclass(frozen=True)
class Plan:
    workers: int | tuple[int, int]  # a count, or (min, max) for an elastic group
    cpus_per_worker: float
    threads_per_worker: int
    data_cpus: float
    cpus_per_data_task: float
    use_gpu: bool
    placement: str

    def describe(self) -> str:
        elastic = isinstance(self.workers, tuple)
        return (
            f"plan: {'-'.join(map(str, self.workers)) if elastic else self.workers} "
            f"train worker(s) x {self.cpus_per_worker:g} CPU "
            f"({self.threads_per_worker} torch thread(s) each{', 1 GPU each' if self.use_gpu else ''}); "
            f"Ray Data limited to {self.data_cpus:g} CPU in tasks of {self.cpus_per_data_task:g} CPU"
            + (ELASTIC_CAVEAT if elastic else "")
        )


def plan_resources(scaling: WorkerScaling, cluster_cpus: float, cluster_gpus: float = 0) -> Plan:
    """Split `cluster_cpus` between training workers and data workers (an elastic group: its max)."""
    workers = scaling.max_workers
    if scaling.use_gpu and cluster_gpus < workers:
        raise PlanError(f"scaling.workers={workers} with use_gpu needs {workers} GPUs; the cluster has {cluster_gpus:g}")
    if scaling.cpus_per_worker:
        per_worker = scaling.cpus_per_worker
        data_cpus = cluster_cpus - workers * per_worker
    else:
        # A quarter of the cluster (at least one CPU, at most half of it) feeds the trainers.
        data_cpus = min(max(1.0, cluster_cpus / 4), cluster_cpus / 2)
        per_worker = math.floor((cluster_cpus - data_cpus) / workers * 4) / 4  # quarter-CPU steps
        data_cpus = cluster_cpus - workers * per_worker
    if per_worker <= 0 or data_cpus < 0.25:
        raise PlanError(
            f"scaling.workers={workers} does not fit {cluster_cpus:g} CPU(s) with room for data workers; "
            f"use at most {max(1, int((cluster_cpus - 0.5) / 0.25))} workers or set scaling.cpus_per_worker"
        )
    return Plan(
        workers=scaling.workers,
        cpus_per_worker=per_worker,
        threads_per_worker=max(1, math.floor(per_worker)),
        data_cpus=data_cpus,
        # half-CPU tasks: Ray Data reserves a share of its limit per operator; a whole CPU may not fit
        cpus_per_data_task=min(0.5, data_cpus),
        use_gpu=scaling.use_gpu,
        placement=scaling.placement,
    )


def shared_plan(scaling: WorkerScaling, limit: int | None, cluster_cpus: float, cluster_gpus: float = 0) -> tuple[int, Plan]:
    """How many runs (tune trials, k-fold folds) go at once, and the plan each gets of its share.

    Each run needs its workers plus about one CPU of data workers; `limit` caps the count.
    """
    fits = max(1, math.floor(cluster_cpus / (scaling.max_workers + 1)))
    concurrent = min(limit, fits) if limit else fits
    return concurrent, plan_resources(scaling, cluster_cpus / concurrent - DRIVER_CPU, cluster_gpus / concurrent)


@dataclass(frozen=True)
class ReplicaPlan:
    """What each replica of a served model gets (`augtrain serve`)."""

    replicas: int
    cpus_per_replica: float
    threads_per_replica: int

    def describe(self) -> str:
        return (f"plan: {self.replicas} replica(s) x {self.cpus_per_replica:g} CPU "
                f"({self.threads_per_replica} torch thread(s) each)")


def plan_replicas(replicas: int, cluster_cpus: float, cpus_per_replica: float | None = None) -> ReplicaPlan:
    """One CPU per replica (a served batch is small: replicas scale out, not up), or quarter-CPU shares of
    the cluster when that many do not fit; torch threads as training's workers get them."""
    if replicas < 1:
        raise PlanError(f"--replicas {replicas}: at least 1")
    per_replica = cpus_per_replica or min(1.0, math.floor(cluster_cpus / replicas * 4) / 4)
    if per_replica <= 0 or replicas * per_replica > cluster_cpus:
        raise PlanError(f"{replicas} replica(s) do not fit {cluster_cpus:g} CPU(s); use at most "
                        f"{max(1, int(cluster_cpus / 0.25))} (a quarter CPU each)")
    return ReplicaPlan(replicas, per_replica, max(1, math.floor(per_replica)))
