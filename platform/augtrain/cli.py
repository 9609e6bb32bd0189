"""The `augtrain` command: collect | validate | run | tune | evaluate."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import pyarrow.parquet as pq
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from augtrain.bundle import BundleError
from augtrain.plan import PlanError
from augtrain.sources import SourceError
from augtrain.spec import Data, SpecError, dump_job, load_job

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Collected data -> augmented stream -> trained model.")
console = Console(highlight=False, soft_wrap=True)
BAD_INPUT = (SpecError, SourceError, PlanError, BundleError)


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def _summary(collected) -> None:
    manifest = collected.manifest
    counts = {split: sum(per_class.values()) for split, per_class in manifest["counts"].items()}
    verb = "already collected" if collected.skipped else "collected"
    lengths = manifest.get("lengths")
    shape = f"lengths {lengths['min']}-{lengths['max']} x {manifest['channels']} channel(s)" if lengths else (
        f"shape {tuple(manifest['shape'])}"
    )
    console.print(
        f"{verb} {collected.path}: {manifest['kind']}s, {len(manifest['classes'])} classes, {shape} "
        f"{manifest['dtype']}, train {counts['train']} / val {counts['val']} / test {counts['test']}, "
        f"quarantined {manifest['quarantined']}, hash {manifest['hash'][:12]}"
    )
    if manifest["quarantined"]:
        reasons = pq.read_table(collected.path / "quarantine.parquet").column("reason").to_pylist()
        for reason, n in Counter(r.split(":")[0] for r in reasons).most_common():
            console.print(f"  quarantined {n}: {reason}")


@app.command()
def collect(
    source: Annotated[str, typer.Argument(help="sklearn-digits, ucr:NAME, an image folder, .npz, .csv/.parquet, or a job .yaml")],
    out: Annotated[Optional[Path], typer.Option(help="dataset dir (default: the job's data.path or data/<name>)")] = None,
    seed: int = 0,
    test_size: float = 0.2,
    val_size: float = 0.1,
    label_column: str = "label",
    image_column: Optional[str] = None,
    archive: Annotated[Optional[str], typer.Option(help="UCR/UEA archive folder for ucr:NAME")] = None,
    kind: Annotated[Optional[str], typer.Option(help=".npz only: 'sequence' reads x as (N, T[, C])")] = None,
) -> None:
    """Collect a source into a versioned Parquet dataset with a manifest; bad records are quarantined."""
    from augtrain.collect import collect as collect_source

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
                image_column=image_column,
                archive=archive,
                kind=kind,
            )
        _summary(collect_source(data, out))
    except BAD_INPUT as exc:
        _fail(str(exc))
    except ValidationError as exc:
        from augtrain.augment import problems

        _fail(problems(exc))


@app.command()
def validate(job: Path, overrides: Annotated[Optional[list[str]], typer.Argument()] = None) -> None:
    """Check a job file (and dotted overrides) without running it; print the resolved spec."""
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
    """Run a job: collect, train on Ray, evaluate; prints `run dir: PATH` last."""
    from augtrain.run import run_job

    try:
        spec = load_job(job, overrides or [])
        console.print(dump_job(spec), end="", markup=False)
        run_dir = run_job(spec, address, echo=lambda line: console.print(line, markup=False))
    except BAD_INPUT as exc:
        _fail(str(exc))
    except Exception as exc:  # a failed Ray run: one line, details are in the Ray logs above
        _fail(f"run failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", code=1)
    _report(run_dir)


def _report(run_dir: Path) -> None:
    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    console.print(f"test accuracy {test['accuracy']:.4f}  macro F1 {test['macro_f1']:.4f}")
    console.print(f"run dir: {run_dir}", markup=False)


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="a run dir (or its model/ bundle)")],
    data: Annotated[Optional[Path], typer.Option(help="another collected dataset (default: the run's own)")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: RAY_ADDRESS or embedded)")] = None,
) -> None:
    """Re-evaluate a finished run's model on a test split; writes RUN/evaluations/<dataset hash>.json."""
    from augtrain.run import reevaluate

    try:
        out, metrics = reevaluate(run, data, address)
    except BAD_INPUT as exc:
        _fail(str(exc))
    test = metrics["test"]
    console.print(f"test accuracy {test['accuracy']:.4f}  macro F1 {test['macro_f1']:.4f}  ({out})", markup=False)


@app.command(name="tune")
def tune_command(
    job: Path,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="dotted.path=value")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: RAY_ADDRESS or embedded)")] = None,
    resume: Annotated[bool, typer.Option(help="continue the newest interrupted sweep of this job")] = False,
    retry_errored: Annotated[bool, typer.Option(help="with --resume: restart errored trials from scratch")] = False,
) -> None:
    """Sweep the job's `tune.space` with Ray Tune; the best trial becomes the run's model."""
    from augtrain.tune import tune_job

    try:
        spec = load_job(job, overrides or [])
        console.print(dump_job(spec), end="", markup=False)
        run_dir = tune_job(spec, address, lambda line: console.print(line, markup=False), resume, retry_errored)
    except BAD_INPUT as exc:
        _fail(str(exc))
    except Exception as exc:  # a failed sweep: one line, details are in the Ray logs above
        _fail(f"tune failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", code=1)
    _report(run_dir)


if __name__ == "__main__":
    app()
