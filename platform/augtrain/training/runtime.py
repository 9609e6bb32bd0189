"""The Ray runtime: start an embedded Ray or attach to a cluster, and what the cluster offers."""

from __future__ import annotations

import importlib
import logging
import os
import threading

import ray

from augtrain.datasets.stream import configure_data

REPORT_POLL_S = 0.1
# Ray kills idle worker processes beyond one per CPU after a second. Ray Data runs half-CPU tasks,
# two per CPU, so every pass would restart the extra workers and pay their imports again.
IDLE_WORKERS_PER_CPU = 2


def quiet() -> None:
    """Keep out Ray's notices that need nothing from the user, in this process (the driver, and every Ray
    worker process of a run: its `worker_process_setup_hook`)."""
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # Collect's tasks take their part of the source as a row: a Python object that Ray Data pickles,
    # after telling that it could not make an Arrow column of it
    logging.getLogger("ray.data._internal.tensor_extensions.arrow").setLevel(logging.ERROR)
    # that the embedded Ray turned token authentication on, as it should
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    # "Progress bars disabled": they are, off a terminal and where the train loop shows its own
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


def start_ray(address: str | None = None, meanwhile: tuple[str, ...] = ()) -> None:
    """Attach to `address` (or RAY_ADDRESS); with neither, start an embedded local Ray.

    `meanwhile`: modules a command imports next, imported on another thread while ray.init waits on the
    processes it starts (about 4 s for an embedded Ray, in which seconds of torch, scikit-learn and
    matplotlib imports fit: benchmarks/RESULTS.md); both are done when this returns.
    """
    configure_data()
    quiet()
    if ray.is_initialized():
        return
    loader = threading.Thread(target=lambda: [importlib.import_module(name) for name in meanwhile])
    loader.start()
    try:
        _init(address or os.environ.get("RAY_ADDRESS"))
    finally:
        loader.join()


def _init(address: str | None) -> None:
    env = {
        # Workers print one line per epoch; without these, Ray Train logs each print twice and
        # Ray Data logs every epoch's execution plan.
        "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
        "RAY_DATA_LOG_LEVEL": "WARNING",
        # The Train controller takes one report per poll, every 2 s by default, and a worker's
        # next report waits for it: every epoch cost at least 2 s (digits trains one in 0.3 s).
        "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": str(REPORT_POLL_S),
    }
    logs = ray.LoggingConfig(log_level="WARNING")
    runtime_env = {"env_vars": env, "worker_process_setup_hook": quiet}
    if address:
        ray.init(address=address, runtime_env=runtime_env, logging_config=logs)
    else:
        # Ray Train starts an actor per run that watches for nodes being drained (spot preemption):
        # one more process start per run, and the one node of an embedded Ray is never drained.
        env["RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"] = "0"
        # No dashboard: its web server and module processes took 1-2 s of every command's start and about 2 %
        # of a CPU while idle (benchmarks/RESULTS.md). To watch runs in it, `ray start --head` and --address.
        ray.init(
            address="local",  # embedded: never another Ray this machine happens to run (`ray start`, a second run)
            include_dashboard=False,
            runtime_env=runtime_env,
            logging_config=logs,
            _system_config={"num_workers_soft_limit": IDLE_WORKERS_PER_CPU * (os.cpu_count() or 1)},
        )


def cluster_cpus_gpus() -> tuple[float, float]:
    resources = ray.cluster_resources()
    return resources.get("CPU", 0), resources.get("GPU", 0)
