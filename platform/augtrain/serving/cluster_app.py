"""A served model on a Ray cluster: the Serve config file `augtrain serve RUN --write-config FILE` writes for
`serve deploy`, and `application_from_args`, the application builder that file names.

The file names the bundle where the cluster's replicas read it (a shared path or a URI) and its hash (they
refuse any other bundle), and the environment variable that holds the token on the cluster's nodes, never
the token itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from augtrain.errors import BadInput

BUILDER = "augtrain.serving.cluster_app:application_from_args"
TOKEN_ENV = "AUGTRAIN_SERVE_TOKEN"


class ServeArgs(BaseModel):
    """The `args` of the config file's application."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bundle: str  # a path every node sees, or a URI (s3://, gs://, ...): the bundle or a run dir holding one
    digest: Optional[str] = None  # the bundle's hash: replicas refuse any other
    public_key: Optional[str] = None  # on the nodes: refuse a bundle this key does not verify
    # the variable holding the token on the nodes; null: the cluster's token authentication guards every request
    token_env: Optional[str] = Field(TOKEN_ENV, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    replicas: int = 1
    cpus_per_replica: float = 1.0
    max_batch_size: int = 32
    batch_wait_ms: float = 5.0


def application_from_args(args: dict):
    """The application `serve deploy` builds on the cluster from the config file's args."""
    from augtrain.serving.endpoint import (
        application,
        check_batching,
        cluster_token_auth,
    )
    from augtrain.training.plan import plan_replicas

    args = ServeArgs.model_validate(args)
    check_batching(args.max_batch_size, args.batch_wait_ms)
    if args.token_env is None and not cluster_token_auth():
        raise BadInput("no token_env and no token authentication on this cluster: every request must carry a token")
    # the cluster's autoscaler, not the nodes up now, decides where replicas fit
    plan = plan_replicas(args.replicas, float("inf"), args.cpus_per_replica)
    return application(args.bundle, args.public_key, None, plan, args.max_batch_size, args.batch_wait_ms / 1000,
                       cluster_token=args.token_env is None, token_env=args.token_env, digest=args.digest)


def write_config(run: str | Path, out: Path, bundle_location: str | None = None, host: str = "0.0.0.0",
                 port: int = 8000, replicas: int = 1, max_batch_size: int = 32, batch_wait_ms: float = 5.0,
                 token_env: str | None = TOKEN_ENV, public_key: str | Path | None = None, name: str = "augtrain",
                 route_prefix: str = "/") -> str:
    """Write the Serve config file for the bundle of `run` (verified here first) kept at `bundle_location`
    (default: where it is, for a path every node shares); return the command that deploys it."""
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from augtrain.artifacts.bundle import bundle_folder, load_bundle
    from augtrain.serving.endpoint import REQUEST_TIMEOUT_S, check_batching

    check_batching(max_batch_size, batch_wait_ms)
    if replicas < 1:
        raise BadInput(f"--replicas {replicas}: at least 1")
    bundle = load_bundle(run, public_key)
    try:
        args = ServeArgs(bundle=bundle_location or str(bundle_folder(run).resolve()), digest=bundle.digest,
                         public_key=None if public_key is None else str(Path(public_key).resolve()),
                         token_env=token_env, replicas=replicas, max_batch_size=max_batch_size,
                         batch_wait_ms=batch_wait_ms)
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise BadInput(f"--{'-'.join(map(str, problem['loc'])).replace('_', '-')}: {problem['msg']}") from None
    config = {
        "http_options": {"host": host, "port": port, "request_timeout_s": REQUEST_TIMEOUT_S},
        "logging_config": {"log_level": "WARNING"},
        "applications": [{"name": name, "route_prefix": route_prefix, "import_path": BUILDER,
                          "args": args.model_dump()}],
    }
    ServeDeploySchema.model_validate(config)  # Serve's own schema: never a file `serve deploy` refuses
    token = f"the token is read from ${token_env} on the nodes" if token_env else "the cluster's token guards it"
    out.write_text(f"# augtrain serve, {bundle.job.model.name}: `serve deploy {out.name}` (RAY_ADDRESS: the cluster); "
                   f"{token}\n" + yaml.safe_dump(config, sort_keys=False))
    return f"serve deploy {out}"
