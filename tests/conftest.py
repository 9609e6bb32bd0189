"""One local Ray for the whole session; small real data the tests generate."""

import os

import pytest

os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")


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
