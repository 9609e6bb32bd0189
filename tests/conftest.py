"""One local Ray for the whole session; small real data the tests generate."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
JOBS_DIR = Path(__file__).resolve().parents[1] / "jobs"


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from augtrain.run import start_ray

    start_ray()
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def digits():
    from sklearn.datasets import load_digits

    return load_digits()


def tiny_run(root, job_file: str, *overrides: str):
    """A real run of a shipped job in small form (3 epochs), stored under `root`; its run dir."""
    from augtrain.run import run_job
    from augtrain.spec import load_job

    job = JOBS_DIR / job_file
    paths = [f"run.storage_path={root / 'runs'}", f"data.path={root / 'data'}", "train.epochs=3"]
    return run_job(load_job(job, [*paths, *overrides]), echo=lambda line: None)


@pytest.fixture(scope="session")
def finished_run(ray_session, tmp_path_factory):
    """The main digits job, run for 3 epochs: an image run dir with its bundle."""
    return tiny_run(tmp_path_factory.mktemp("digits"), "digits_cnn.yaml")


@pytest.fixture(scope="session")
def finished_sequence_run(ray_session, tmp_path_factory):
    """The GunPoint FCN job, run for 3 epochs: a sequence run dir with its bundle."""
    return tiny_run(tmp_path_factory.mktemp("gunpoint"), "gunpoint_fcn.yaml")
