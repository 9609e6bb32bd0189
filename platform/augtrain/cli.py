"""The `augtrain` command: collect | validate | run | tune | evaluate | predict | serve | export | explain | report |
sign | submit | status | logs | stop | list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from augtrain.errors import BadInput, clip

if TYPE_CHECKING:
    from augtrain.config.spec import Job

# Each command imports what it runs when it runs: `augtrain --help` loads no pyarrow, numpy, torch or Ray.
app = typer.Typer(no_args_is_help=True, help="Collected data -> augmented stream -> trained model.")
console = Console(highlight=False, soft_wrap=True)
MESSAGE_LINE = 500  # characters: a message may quote input of any size
PublicKey = Annotated[
    Optional[Path],
    # resolved here: Ray actors and Serve replicas that load the bundle do not share this working directory
    typer.Option(envvar="AUGTRAIN_PUBLIC_KEY", resolve_path=True,
                 help="refuse a bundle unless this public key (PEM) verifies its signature"),
]


def _fail(message: str, code: int = 2) -> None:
    lines = [clip(line, MESSAGE_LINE) for line in message.splitlines()[:50]]
    console.print(f"[red]error:[/red] {escape(chr(10).join(lines))}")
    raise typer.Exit(code)


def _failed(what: str, exc: Exception) -> None:
    """A failed run or sweep in one line (details are in the Ray logs above): the message's first line, or
    where Ray put a traceback first (a trial's or a worker's error), its last line, the error itself."""
    lines = [line for line in str(exc).splitlines() if line.strip()] or [""]
    _fail(f"{what} failed: {type(exc).__name__}: {lines[-1] if lines[0].startswith('Traceback') else lines[0]}", code=1)


def _summary(collected) -> None:
    from collections import Counter

    import pyarrow.parquet as pq

    from augtrain.datasets.storage import join, open_input
    from augtrain.modalities import modality

    manifest = collected.manifest
    counts = {split: sum(per_class.values()) for split, per_class in manifest["counts"].items()}
    verb = "already collected" if collected.skipped else "collected"
    kind = modality(manifest["kind"])
    shape = kind.describe(manifest)
    console.print(
        f"{verb} {collected.path}: {kind.samples_name}, {len(manifest['classes'])} classes, {shape} "
        f"{manifest['dtype']}, train {counts['train']} / val {counts['val']} / test {counts['test']}, "
        f"quarantined {manifest['quarantined']}, hash {manifest['hash'][:12]}"
    )
    if collected.nodes:
        console.print(f"  decoded in Ray Data tasks on {collected.nodes} node(s)", markup=False)
    if collected.note:
        console.print(f"  note: {collected.note}", markup=False)
    if manifest["quarantined"]:
        reasons = pq.read_table(open_input(join(collected.path, "quarantine.parquet"))).column("reason").to_pylist()
        for kind, n in Counter(r.split(":")[0] for r in reasons).most_common():  # a reason is "kind: detail"
            console.print(f"  quarantined {n}: {kind}", markup=False)


@app.command()
def collect(
    source: Annotated[str, typer.Argument(help="sklearn-digits, ucr:NAME, an image folder, .npz, .csv/.parquet, or a job .yaml")],
    out: Annotated[Optional[str], typer.Option(help="dataset dir or URI (default: the job's data.path or data/<name>)")] = None,
    seed: int = 0,
    test_size: float = 0.2,
    val_size: float = 0.1,
    label_column: str = "label",
    path_column: Optional[str] = None,
    split_column: Annotated[Optional[str], typer.Option(help="a table's column naming each row's split")] = None,
    resize: Annotated[Optional[tuple[int, int]], typer.Option(help="H W every image is resized to")] = None,
    channels: Annotated[Optional[int], typer.Option(help="1 (grey) or 3 (RGB); default: what most images have")] = None,
    archive: Annotated[Optional[str], typer.Option(help="UCR/UEA archive folder for ucr:NAME")] = None,
    kind: Annotated[Optional[str], typer.Option(help=".npz only: 'sequence' reads x as (N, T[, C])")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster to decode on (default: RAY_ADDRESS, else embedded)")] = None,
) -> None:
    """Collect a source into a versioned Parquet dataset with a manifest; bad records are quarantined.
    The driver lists the source; Ray Data tasks decode and write it on every node."""
    from pydantic import ValidationError

    from augtrain.config.spec import Data, load_job, problems
    from augtrain.datasets.collect import collect as collect_source
    from augtrain.training.runtime import start_ray

    try:
        if source.endswith((".yaml", ".yml")):
            data = load_job(source).data
        else:
            data = Data(
                source=source,
                seed=seed,
                test_size=test_size,
                val_size=val_size,
                label_column=label_column,
                path_column=path_column,
                split_column=split_column,
                resize=resize,
                channels=channels,
                archive=archive,
                kind=kind,
            )
        start_ray(address)
        _summary(collect_source(data, out))
    except BadInput as exc:
        _fail(str(exc))
    except ValidationError as exc:
        _fail(problems(exc))


@app.command()
def validate(job: Path, overrides: Annotated[Optional[list[str]], typer.Argument()] = None) -> None:
    """Check a job file (and dotted overrides) without running it; print the resolved spec."""
    from augtrain.config.spec import SpecError, dump_job, load_job

    try:
        spec = load_job(job, overrides or [])
    except SpecError as exc:
        _fail(str(exc))
    console.print(dump_job(spec), end="", markup=False)
    console.print(f"{job}: ok")


@app.command()
def run(
    job: Path,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="dotted.path=value")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: RAY_ADDRESS or embedded)")] = None,
) -> None:
    """Run a job: collect, train on Ray, evaluate (with eval.kfold: K-fold cross-validation); prints
    `run dir: PATH` last."""
    from augtrain.config.spec import headline, load_job
    from augtrain.training.runtime import start_ray

    try:
        spec = load_job(job, overrides or [])
        console.print(headline(spec), markup=False)
        # a run in this process builds an optimizer, whose first construction imports torch._dynamo (1-2 s)
        start_ray(address, meanwhile=("augtrain.recipes.kfold" if spec.eval.kfold else "augtrain.recipes.run", "torch._dynamo"))
        from augtrain.recipes.kfold import kfold_job
        from augtrain.recipes.run import run_job

        recipe = kfold_job if spec.eval.kfold else run_job
        run_dir = recipe(spec, address, echo=lambda line: console.print(line, markup=False))
    except BadInput as exc:
        _fail(str(exc))
    except Exception as exc:  # a failed Ray run: one line, details are in the Ray logs above
        _failed("run", exc)
    _report(run_dir, spec)


def _report(run_dir: Path, spec: Job) -> None:
    """The test scores and where the run is kept: its folder, or at a URI storage its place there (this
    process's local copy goes when it exits: datasets/storage.py)."""
    from augtrain.datasets.storage import is_uri, join
    from augtrain.recipes.rundir import runs_of

    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    console.print(f"test accuracy {test['accuracy']:.4f}  macro F1 {test['macro_f1']:.4f}")
    kept = join(runs_of(spec), run_dir.name) if is_uri(spec.run.storage_path) else run_dir
    console.print(f"run dir: {kept}", markup=False)


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="a run dir (or its model/ bundle)")],
    data: Annotated[Optional[str], typer.Option(help="another collected dataset, dir or URI (default: the run's own)")] = None,
    public_key: PublicKey = None,
) -> None:
    """Re-evaluate a finished run's model on a test split (in this process, no Ray); writes
    RUN/evaluations/<dataset hash>.json."""
    from augtrain.evaluation.evaluate import reevaluate

    try:
        out, metrics = reevaluate(run, data, public_key)
    except BadInput as exc:
        _fail(str(exc))
    test = metrics["test"]
    console.print(f"test accuracy {test['accuracy']:.4f}  macro F1 {test['macro_f1']:.4f}  ({out})", markup=False)


@app.command()
def predict(
    bundle: Annotated[Path, typer.Argument(help="a model bundle or the run dir holding one")],
    source: Annotated[Path, typer.Argument(help="an image folder, a .csv/.parquet table, or a .ts/.tsv/.npz file")],
    out: Annotated[Path, typer.Option(help="predictions Parquet file; rejects go to <out>.quarantine.parquet")] = Path(
        "predictions.parquet"
    ),
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: RAY_ADDRESS or embedded)")] = None,
    public_key: PublicKey = None,
) -> None:
    """Batch inference: one row per input with the predicted class and class probabilities (up to 10,000
    inputs and no cluster named: in this process; more, or a cluster: Ray Data and an actor pool)."""
    from augtrain.serving.predict import predict as predict_source
    from augtrain.serving.predict import quarantine_path

    try:
        scored, rejected = predict_source(bundle, source, out, address, lambda line: console.print(line, markup=False),
                                          public_key)
    except BadInput as exc:
        _fail(str(exc))
    console.print(f"predicted {scored} input(s) -> {out}", markup=False)
    if rejected:
        console.print(f"quarantined {rejected} input(s) -> {quarantine_path(out)}", markup=False)


@app.command(name="serve")
def serve_command(
    run: Annotated[Path, typer.Argument(help="a run dir (or its model/ bundle)")],
    host: Annotated[str, typer.Option(help="address to bind; other than loopback needs --token (or the cluster's)")] = "127.0.0.1",
    port: int = 8000,
    replicas: Annotated[int, typer.Option(min=1, help="replicas, each loading the bundle once")] = 1,
    max_batch_size: Annotated[int, typer.Option(help="inputs scored together, across requests")] = 32,
    batch_wait_ms: Annotated[float, typer.Option(help="how long a batch waits to fill")] = 5.0,
    token: Annotated[Optional[str], typer.Option(envvar="AUGTRAIN_SERVE_TOKEN",
                                                 help="every request must send Authorization: Bearer TOKEN")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: RAY_ADDRESS or embedded)")] = None,
    public_key: PublicKey = None,
    write_config: Annotated[Optional[Path], typer.Option(help="write a Ray Serve config file for `serve deploy` on "
                                                              "a cluster, and exit without serving")] = None,
    bundle_location: Annotated[Optional[str], typer.Option(help="with --write-config: where the cluster's replicas read "
                                                                 "the bundle, a shared path or URI (default: RUN's path)")] = None,
    token_env: Annotated[str, typer.Option(help="with --write-config: the variable holding the token on the cluster's "
                                                "nodes ('' : the cluster's token authentication guards it)")] = "AUGTRAIN_SERVE_TOKEN",
) -> None:
    """Serve the run's model over HTTP on Ray Serve (POST /predict, GET /model, GET /healthz, GET /openapi.json,
    and a page to try it at GET /) until Ctrl-C; requests are batched across clients."""
    if write_config is not None:
        from augtrain.serving.cluster_app import write_config as write

        try:
            deploy = write(run, write_config, bundle_location, host, port, replicas, max_batch_size, batch_wait_ms,
                           token_env or None, public_key)
        except BadInput as exc:
            _fail(str(exc))
        console.print(f"wrote {write_config}; deploy it on the cluster: {deploy}", markup=False)
        return
    from augtrain.serving.endpoint import serve_until_interrupted, start_endpoint

    try:
        url = start_endpoint(run, host, port, replicas, max_batch_size, batch_wait_ms, token, address, public_key,
                             echo=lambda line: console.print(line, markup=False))
    except BadInput as exc:
        _fail(str(exc))
    console.print(f"serving {run} at {url}/predict (try it: {url}/ in a browser); Ctrl-C stops", markup=False)
    serve_until_interrupted()


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="a run dir (or its model/ bundle)")],
    format: Annotated[str, typer.Option("--format", help="torchscript or onnx")] = "onnx",
    out: Annotated[Optional[Path], typer.Option(help="default: RUN/export/model.onnx or model.torchscript.pt")] = None,
    data: Annotated[Optional[str], typer.Option(help="collected dataset to check on, dir or URI (default: the run's own)")] = None,
    public_key: PublicKey = None,
) -> None:
    """Export the model; written only if it reproduces the PyTorch logits on the whole test split."""
    from augtrain.artifacts.export import TOLERANCE, ExportError, export_run

    try:
        out, difference, checked = export_run(run, format, out, data, public_key)
    except (BadInput, ExportError) as exc:
        _fail(str(exc))
    console.print(
        f"{format}: {out}\nmax abs logit difference from PyTorch on {checked} test inputs: "
        f"{difference:.2e} (tolerance {TOLERANCE:g})",
        markup=False,
    )


@app.command()
def explain(
    bundle: Annotated[Path, typer.Argument(help="a model bundle or the run dir holding one")],
    source: Annotated[Path, typer.Argument(help="an image folder, a .csv/.parquet table, or a .ts/.tsv/.npz file")],
    out: Annotated[Path, typer.Option(help="folder for attributions.png and attributions.npz")] = Path("explain"),
    limit: Annotated[int, typer.Option(min=1, help="how many inputs (the first readable ones)")] = 8,
    public_key: PublicKey = None,
) -> None:
    """Integrated Gradients attribution maps of the model's predicted class for the first inputs (in this
    process, no Ray)."""
    from augtrain.serving.explain import explain_inputs

    try:
        written = explain_inputs(bundle, source, out, limit, public_key)
    except BadInput as exc:
        _fail(str(exc))
    console.print(f"attributions of {written} input(s) -> {out / 'attributions.png'}", markup=False)


@app.command()
def report(run: Annotated[Path, typer.Argument(help="a run dir")]) -> None:
    """(Re)write RUN/report.html: spec, data card, learning curves, test metrics, k-fold, tuning, attributions."""
    from augtrain.artifacts.report import write_report

    if not (run / "metrics.json").is_file():
        _fail(f"{run}: not a finished run dir (no metrics.json)")
    try:
        written = write_report(run)
    except BadInput as exc:  # its spec.yaml, edited since
        _fail(str(exc))
    except (ValueError, KeyError, OSError) as exc:  # a run dir damaged since it was written
        _fail(f"{run}: not readable as a run dir: {type(exc).__name__}: {clip(str(exc))}")
    console.print(f"report: {written}", markup=False)


@app.command()
def sign(
    run: Annotated[Path, typer.Argument(help="a run dir (or its model/ bundle)")],
    key: Annotated[Path, typer.Option(help="elliptic-curve private key (PEM) to sign with")],
) -> None:
    """Sign a bundle (model-signing, offline): writes model/model.sig over every file of the bundle. Commands
    given the public key (--public-key or AUGTRAIN_PUBLIC_KEY) then refuse it if anything changes."""
    from augtrain.artifacts.bundle import bundle_folder, load_bundle
    from augtrain.artifacts.signing import sign_bundle

    try:
        load_bundle(run)  # only a bundle that passes every check is worth a signature
        signature = sign_bundle(bundle_folder(run), key)
    except BadInput as exc:
        _fail(str(exc))
    console.print(f"signed: {signature}", markup=False)


@app.command(name="tune")
def tune_command(
    job: Path,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="dotted.path=value")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: RAY_ADDRESS or embedded)")] = None,
    resume: Annotated[bool, typer.Option(help="continue the newest interrupted sweep of this job")] = False,
    retry_errored: Annotated[bool, typer.Option(help="with --resume: restart errored trials from scratch")] = False,
) -> None:
    """Sweep the job's `tune.space` with Ray Tune; the best trial becomes the run's model."""
    from augtrain.config.spec import headline, load_job
    from augtrain.training.runtime import start_ray

    try:
        spec = load_job(job, overrides or [])
        console.print(headline(spec), markup=False)
        start_ray(address, meanwhile=("augtrain.recipes.tune",))
        from augtrain.recipes.tune import tune_job

        run_dir = tune_job(spec, address, lambda line: console.print(line, markup=False), resume, retry_errored)
    except BadInput as exc:
        _fail(str(exc))
    except Exception as exc:  # a failed sweep: one line, details are in the Ray logs above
        _failed("tune", exc)
    _report(run_dir, spec)


ClusterAddress = Annotated[
    Optional[str],
    typer.Option(help="the cluster's dashboard as `ray dashboard` forwards it, http://127.0.0.1:8265 (default: RAY_ADDRESS)"),
]


def _echo_logs(chunk: str) -> None:
    console.out(chunk, end="")


@app.command()
def submit(
    job: Path,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="dotted.path=value")] = None,
    address: ClusterAddress = None,
    wait: Annotated[bool, typer.Option(help="follow the logs until the job ends; exit 0 only if it succeeded")] = False,
    working_dir: Annotated[Path, typer.Option(help="uploaded as the job's working dir; must hold the job file")] = Path("."),
) -> None:
    """Run a job on a Ray cluster through its Jobs API, augtrain and the working dir uploaded; prints the job id."""
    from augtrain.cluster.jobs import Cluster, SubmitError, describe
    from augtrain.cluster.submit import package
    from augtrain.config.spec import SpecError, load_job
    from augtrain.datasets.locations import is_uri

    try:
        spec = load_job(job, overrides or [])
        entrypoint, runtime_env = package(job, overrides or [], spec, working_dir)
        cluster = Cluster(address)
        job_id = cluster.submit(entrypoint, runtime_env, spec.run.name)
        console.print(f"submitted {job_id} to {cluster.where}", markup=False)
        if not (Path(spec.run.storage_path).is_absolute() or is_uri(spec.run.storage_path)):
            console.print(
                f"note: run.storage_path {spec.run.storage_path!r} is inside the job's working dir, a temporary copy "
                "on the cluster; set a shared absolute path or a URI (s3://...) to keep the run dir",
                markup=False,
            )
        if not wait:
            console.print(f"follow it: augtrain logs {job_id} --follow", markup=False)
            return
        info = cluster.follow(job_id, _echo_logs)
    except (SpecError, SubmitError) as exc:
        _fail(str(exc))
    if info["status"] != "SUCCEEDED":
        _fail(f"job {job_id} {describe(info)}", code=1)
    console.print(f"job {job_id} SUCCEEDED", markup=False)


@app.command()
def status(job_id: str, address: ClusterAddress = None) -> None:
    """A submitted job's status: PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""
    from augtrain.cluster.jobs import Cluster, SubmitError, describe

    try:
        info = Cluster(address).info(job_id)
    except SubmitError as exc:
        _fail(str(exc))
    console.print(f"{job_id}: {describe(info)}", markup=False)


@app.command()
def logs(
    job_id: str,
    follow: Annotated[bool, typer.Option(help="keep printing until the job ends")] = False,
    address: ClusterAddress = None,
) -> None:
    """A submitted job's logs (its driver's stdout and stderr)."""
    from augtrain.cluster.jobs import Cluster, SubmitError

    try:
        cluster = Cluster(address)
        if follow:
            cluster.follow(job_id, _echo_logs)
        else:
            _echo_logs(cluster.logs(job_id))
    except SubmitError as exc:
        _fail(str(exc))


@app.command()
def stop(job_id: str, address: ClusterAddress = None) -> None:
    """Stop a submitted job."""
    from augtrain.cluster.jobs import Cluster, SubmitError

    try:
        stopping = Cluster(address).stop(job_id)
    except SubmitError as exc:
        _fail(str(exc))
    console.print(f"{job_id}: {'stopping' if stopping else 'already ended'}", markup=False)


@app.command(name="list")
def list_jobs(address: ClusterAddress = None) -> None:
    """Jobs submitted to the cluster, oldest first: id, status, job name, entrypoint."""
    from augtrain.cluster.jobs import Cluster, SubmitError

    try:
        jobs = Cluster(address).jobs()
    except SubmitError as exc:
        _fail(str(exc))
    for job in jobs:
        name = (job.get("metadata") or {}).get("augtrain_job", "-")
        console.print(f"{job['submission_id']}  {job['status']:<9}  {name}  {job['entrypoint']}", markup=False)
    if not jobs:
        console.print("no submitted jobs", markup=False)


if __name__ == "__main__":
    app()
