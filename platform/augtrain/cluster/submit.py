"""Submit: the entrypoint and runtime env that run a job file on a Ray cluster, augtrain and the project uploaded
(sent by `jobs.Cluster.submit`)."""

from __future__ import annotations

import os
import shlex
from collections import Counter
from pathlib import Path

import augtrain
from augtrain.cluster.jobs import SubmitError
from augtrain.config.spec import Job
from augtrain.datasets.locations import is_uri

# Never uploaded: version control, environments, caches, collected data and run dirs.
EXCLUDES = [
    ".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", "*.egg-info",
    "/build", "/data", "/runs", "/mlruns",
]
LARGEST = 3  # paths named when a package is too big


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
