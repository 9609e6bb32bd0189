"""Submit: send a job to a Ray cluster's Jobs API, with augtrain and the project as its runtime env."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import augtrain
from augtrain.config.spec import Job
from augtrain.datasets.locations import is_uri

# Never uploaded: version control, environments, caches, collected data and run dirs.
EXCLUDES = [
    ".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", "*.egg-info",
    "/build", "/data", "/runs", "/mlruns",
]
HOW_TO_AUTH = (
    "give the cluster's token in RAY_AUTH_TOKEN, in a file named by RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token "
    "(print it on the head with `ray get-auth-token`)"
)
LARGEST = 3  # paths named when a package is too big


class SubmitError(Exception):
    """A job that cannot be sent, or a cluster that cannot be reached or refuses us; one line."""


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def upload_limit() -> int:
    """Ray's limit for one runtime_env package: RAY_max_grpc_message_size, 512 MiB by default."""
    from ray._private.runtime_env.packaging import GCS_STORAGE_MAX_SIZE

    return GCS_STORAGE_MAX_SIZE


def check_size(root: Path, excludes: list[str]) -> None:
    """Refuse a package of `root` over Ray's upload limit, naming its largest paths."""
    from ray._private.ray_constants import RAY_RUNTIME_ENV_IGNORE_GITIGNORE
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes

    sizes = Counter()

    def add(path: Path) -> None:
        if path.is_file():
            top = path.relative_to(root).parts
            sizes[top[0] + ("/" if len(top) > 1 else "")] += path.stat().st_size

    # Ray's own walk, so .gitignore, .rayignore and `excludes` skip exactly what the upload skips
    include_gitignore = os.environ.get(RAY_RUNTIME_ENV_IGNORE_GITIGNORE, "0") != "1"
    _dir_travel(root, [_get_excludes(root, excludes)], add, include_gitignore=include_gitignore)
    total, limit = sum(sizes.values()), upload_limit()
    # Ray limits the zipped package; counting the files before compression refuses early, without zipping
    if total >= limit:
        largest = ", ".join(f"{name} {_mib(size)}" for name, size in sizes.most_common(LARGEST))
        raise SubmitError(
            f"{root}: {_mib(total)} to upload, over Ray's runtime_env package limit of {_mib(limit)} "
            f"(RAY_max_grpc_message_size); largest: {largest}; move them out or list them in .rayignore"
        )


def package(job_file: Path, overrides: list[str], job: Job, workdir: Path) -> tuple[str, dict]:
    """The entrypoint and runtime env that run `job_file` on a cluster: augtrain as a py_module, `workdir` as cwd."""
    workdir, source = workdir.resolve(), Path(augtrain.__file__).parent
    try:
        relative_job = job_file.resolve().relative_to(workdir)
    except ValueError:
        raise SubmitError(f"{job_file}: the job file must be inside the working dir that is uploaded ({workdir})") from None
    # the job's own collected data and run dirs stay here; augtrain travels once, as the `augtrain` package
    # (never as a `platform/` folder in the working dir: see DESIGN.md "The platform trap")
    local = [job.data.path, job.run.storage_path]
    if source.is_relative_to(workdir):
        local.append(str(source.relative_to(workdir)))
    excludes = EXCLUDES + [f"/{path.strip('/')}" for path in local if path and not (Path(path).is_absolute() or is_uri(path))]
    # Ray applies the excludes to the package's own folder too: a pattern naming one of its subpackages
    # would leave it behind
    clash = sorted(e for e in excludes if e.startswith("/") and (source / e[1:]).exists())
    if clash:
        raise SubmitError(f"{', '.join(clash)}: excluded from the upload but also a part of the augtrain package; "
                          "choose another data.path or run.storage_path")
    for root in (workdir, source):
        check_size(root, excludes)
    entrypoint = shlex.join(["python", "-m", "augtrain.cli", "run", str(relative_job), *overrides])
    return entrypoint, {"working_dir": str(workdir), "py_modules": [str(source)], "excludes": excludes}


def describe(info) -> str:
    """A job's status and why, in one line: a failure's exit code rather than the log tail Ray appends."""
    if info.status.value == "FAILED" and info.driver_exit_code is not None:
        why = f"exit code {info.driver_exit_code}"
    else:
        why = next(iter((info.message or "").strip().splitlines()), "")
    return info.status.value + (f" ({why})" if why else "")


def _token_source() -> str:
    """Where Ray reads the auth token from, in Ray's order of precedence."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    return os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token"


class Cluster:
    """The Jobs API of one Ray cluster; every failure is one SubmitError line."""

    def __init__(self, address: str | None = None):
        from ray._raylet import AuthenticationTokenLoader
        from ray.exceptions import AuthenticationError
        from ray.job_submission import JobSubmissionClient

        # Ray's client logs every packaging step and the close of each log stream; the CLI says what matters
        for name in ("ray._private.runtime_env", "ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self.where = address or os.environ.get("RAY_ADDRESS") or "the local Ray"
        loader = AuthenticationTokenLoader.instance()
        loader.reset_cache()  # it caches the first token it finds; read this environment's
        try:
            # Ray's client sends a token only where RAY_AUTH_MODE=token is set locally; a token
            # cluster needs it whether or not the submitting machine runs Ray in token mode
            headers = loader.get_token_for_http_header(ignore_auth_mode=True)
        except AuthenticationError:  # RAY_AUTH_TOKEN_PATH names a missing or empty file
            raise SubmitError(f"cannot read the Ray auth token from {_token_source()}; {HOW_TO_AUTH}") from None
        self.has_token = bool(headers)
        with self._errors():
            self.client = JobSubmissionClient(address, headers=headers)
            self.where = self.client.get_address()

    @contextmanager
    def _errors(self):
        import aiohttp
        import requests
        from ray.exceptions import AuthenticationError

        try:
            yield
        except AuthenticationError:
            if self.has_token:
                raise SubmitError(f"{self.where} rejected the Ray auth token from {_token_source()}; {HOW_TO_AUTH}") from None
            raise SubmitError(f"{self.where} requires a Ray auth token; {HOW_TO_AUTH}") from None
        except (ConnectionError, requests.ConnectionError, aiohttp.ClientConnectionError):
            raise SubmitError(
                f"cannot reach a Ray dashboard at {self.where}; is the cluster up? "
                "(`ray dashboard cluster.yaml` forwards it to http://127.0.0.1:8265)"
            ) from None
        except RuntimeError as exc:  # the Jobs API answered with an error, e.g. an unknown job id
            raise SubmitError(str(exc).strip().splitlines()[0]) from None

    def submit(self, entrypoint: str, runtime_env: dict, name: str) -> str:
        """Upload the runtime env and start the job; its submission id."""
        with self._errors():
            return self.client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env, metadata={"augtrain_job": name})

    def info(self, job_id: str):
        with self._errors():
            return self.client.get_job_info(job_id)

    def logs(self, job_id: str) -> str:
        with self._errors():
            return self.client.get_job_logs(job_id)

    def follow(self, job_id: str, echo: Callable[[str], None]):
        """Echo the job's logs as they come until it ends; its final JobInfo."""

        async def tail():
            async for chunk in self.client.tail_job_logs(job_id):
                echo(chunk)

        with self._errors():
            asyncio.run(tail())
            # the log stream closes as the job ends; its status may lag behind by a moment
            while not (info := self.client.get_job_info(job_id)).status.is_terminal():
                time.sleep(0.5)
        return info

    def stop(self, job_id: str) -> bool:
        """Ask the job to stop; False if it had already ended."""
        with self._errors():
            return self.client.stop_job(job_id)

    def jobs(self) -> list:
        """Submitted jobs (not drivers that attached directly), oldest first."""
        with self._errors():
            jobs = [job for job in self.client.list_jobs() if job.submission_id]
        return sorted(jobs, key=lambda job: job.start_time or 0)
