"""The run report: sections from what a run dir holds, and a real headless Chromium showing it without errors."""

import base64
import csv
import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from augtrain.artifacts.report import data_card, write_report
from augtrain.config.spec import dump_job, parse_job
from augtrain.datasets.collect import collect
from augtrain.datasets.format import read_manifest
from augtrain.datasets.normalize import SERIES
from augtrain.evaluation import metrics as evaluate
from PIL import Image

pytestmark = pytest.mark.usefixtures("ray_session")  # collect() runs on Ray
CORE = ["spec", "data", "curves", "test", "files"]
EVERY = ["spec", "data", "curves", "test", "kfold", "tuning", "attributions", "files"]
# Debian's chromium, driven by Playwright's client; never a downloaded browser
CHROMIUM = shutil.which("chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def tiny_run(tmp_path, kind="image", extras=False):
    """A run dir as `augtrain run` leaves it, without Ray: a collected npz, spec, metrics (and optional extras)."""
    rng = np.random.default_rng(0)
    classes = np.array(["<b>cat</b>", "dog", "eel"])
    y = np.repeat(classes, 12)
    if kind == "image":
        arrays, augment = {"x": rng.integers(0, 256, (36, 6, 6, 3), dtype=np.uint8)}, [{"name": "HorizontalFlip", "p": 1.0}]
    else:  # ragged series, stored flat with their lengths: NaN-padded when collected
        lengths = np.array([20 + i % 7 for i in range(36)])
        values = np.concatenate([np.sin(np.linspace(0, 6, n)).astype(np.float32) for n in lengths])
        arrays, augment = {"values": values, "lengths": lengths}, [{"name": "Jitter", "sigma": 0.1, "p": 1.0}]
    np.savez(tmp_path / "source.npz", y=y, **arrays)
    data = {"source": str(tmp_path / "source.npz"), "path": str(tmp_path / "dataset"), "kind": kind}
    job = parse_job({"data": data, "augment": augment, "model": {"name": "cnn" if kind == "image" else "fcn"},
                     "run": {"name": "tiny"}})
    collected = collect(job.data)
    dataset = collected.path
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "spec.yaml").write_text(dump_job(job))
    stats = SERIES if kind == "sequence" else {"mean": [0.5] * 3, "std": [0.2] * 3}
    (run / "normalization.json").write_text(json.dumps(stats))
    labels = np.arange(12) % 3
    history = [{"epoch": e, "train_loss": 1 / (e + 1), "train_accuracy": 0.3 * e, "val_loss": 1.2 / (e + 1),
                "val_accuracy": 0.25 * e, "lr": 1e-3, "restarts": 0} for e in range(3)]
    metrics = {"test": evaluate.classification_metrics(labels, np.roll(labels, 1), list(classes)),
               "dataset": {"path": str(dataset), "hash": collected.manifest["hash"]}, "selected": "best", "best_epoch": 2,
               "history": history}
    if extras:
        add_extras(run, metrics)
    evaluate.write_metrics(run, metrics)  # metrics.json, the confusion matrix's .json and .png
    return run


def add_extras(run, metrics):
    """k-fold results, a sweep's trials.csv and plot, and attribution maps."""
    folds = [{"fold": i, "val_accuracy": 0.9, "test_accuracy": 0.8 + i / 100, "test_macro_f1": 0.7, "best_epoch": i}
             for i in range(3)]
    mean = {"val_accuracy": 0.9, "test_accuracy": 0.81, "test_macro_f1": 0.7}
    metrics["kfold"] = {"k": 3, "seed": 0, "folds": folds, "mean": mean, "std": dict.fromkeys(mean, 0.01)}
    metrics["tune"] = {"metric": "val_accuracy", "mode": "max", "trials": 3}
    metrics["best_trial"] = "t_best"
    with (run / "trials.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["trial", "train.lr", "val_accuracy", "status", "checkpoint"])
        writer.writerows([["t_low", 0.1, 0.5, "stopped early", "x"], ["t_none", 0.3, "", "error", ""],
                          ["t_best", 0.01, 0.9, "finished", "y"]])
    image = io.BytesIO()
    Image.new("RGB", (40, 30), "teal").save(image, format="png")
    (run / "tune_metric.png").write_bytes(image.getvalue())
    (run / "explain").mkdir()
    (run / "explain" / "sample_7 <dog>.png").write_bytes(image.getvalue())


def sections(html: str) -> list[str]:
    return re.findall(r'<section id="([a-z]+)">', html)


def images(html: str) -> list[bytes]:
    sources = re.findall(r'<img src="([^"]*)"', html)
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    return [base64.b64decode(src.split(",", 1)[1]) for src in sources]


def test_a_single_run_has_the_core_sections_embedded_and_escaped(tmp_path):
    run = tiny_run(tmp_path)
    html = write_report(run).read_text()
    assert sections(html) == CORE
    # confusion matrix, learning curves, raw and augmented samples; every one a real PNG
    assert [Image.open(io.BytesIO(png)).format for png in images(html)] == ["PNG"] * 4
    saved = (run / "confusion_matrix.png").read_bytes()
    assert saved in images(html)  # the plot the run saved
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")
    assert "<b>cat" not in html and "&lt;b&gt;cat&lt;/b&gt;" in html

    (run / "confusion_matrix.png").unlink()  # a run dir without it: drawn from metrics.json
    assert saved in images(write_report(run).read_text())


def test_kfold_tuning_and_attributions_appear_when_the_run_has_them(tmp_path):
    html = write_report(tiny_run(tmp_path, extras=True)).read_text()
    assert sections(html) == EVERY
    assert html.index("t_best") < html.index("t_low") < html.index("t_none")  # by val_accuracy, unscored last
    assert re.search(r'<tr class="best"><td>t_best</td>', html)
    assert "0.8100 ± 0.0100" in html  # k-fold test accuracy, mean ± std
    assert "sample_7 &lt;dog&gt;" in html
    assert len(images(html)) == 4 + 2


def test_a_sequence_run_plots_its_ragged_series(tmp_path):
    html = write_report(tiny_run(tmp_path, "sequence")).read_text()
    assert sections(html) == CORE and len(images(html)) == 4
    assert "normalized series in grey" in html


def test_a_missing_dataset_is_reported_not_fatal(tmp_path):
    run = tiny_run(tmp_path)
    shutil.rmtree(tmp_path / "dataset")
    html = write_report(run).read_text()
    assert sections(html) == CORE
    assert "is gone" in html and "no longer holds the dataset of hash" in html


def test_a_run_s_dataset_collected_again_since_is_found_by_its_hash(tmp_path):
    """A changed source collected again at the run's data.path moves the run's version aside (<path>@<hash12>):
    the report's data card and `evaluate` read that version, not the new data (another split, in which the
    run's training samples can sit in test)."""
    from augtrain.evaluation.evaluate import run_dataset

    run = tiny_run(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    before = data_card(metrics["dataset"], [], 0, SERIES)["totals"]
    with np.load(tmp_path / "source.npz") as source:
        np.savez(tmp_path / "source.npz", **{name: source[name][:-6] for name in source.files})  # 6 samples fewer
    collect(parse_job({"data": {"source": str(tmp_path / "source.npz"), "path": str(tmp_path / "dataset")}}).data)
    kept = f"{tmp_path / 'dataset'}@{metrics['dataset']['hash'][:12]}"
    assert run_dataset(run) == kept and Path(kept, "manifest.json").is_file()
    assert data_card(metrics["dataset"], [], 0, SERIES)["totals"] == before
    assert sum(data_card({"path": str(tmp_path / "dataset"), "hash": read_manifest(tmp_path / "dataset")["hash"]},
                         [], 0, SERIES)["totals"]) == sum(before) - 6


@pytest.mark.parametrize("damage, problem", [("metrics.json", "{run}: not readable as a run dir: JSONDecodeError"),
                                            ("spec.yaml", "{run}/spec.yaml: not valid YAML")])
def test_a_damaged_run_dir_is_an_error_not_a_traceback(tmp_path, damage, problem):
    from augtrain.cli import app
    from typer.testing import CliRunner

    run = tiny_run(tmp_path)
    (run / damage).write_text("{[" if damage == "metrics.json" else "data: [unclosed\n")
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 2 and result.output.startswith("error: " + problem.format(run=run)), result.output


# --- in a real browser -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    def unavailable(reason):
        if os.environ.get("AUGTRAIN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"AUGTRAIN_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright; it drives Debian's chromium)")
    if CHROMIUM is None:
        unavailable("Debian's chromium is not installed (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def render(browser, report, screenshot) -> tuple[list[str], list[str]]:
    """The page's section headings and its problems: script or console errors, fetches, undecoded images."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems = []
    local = ("file:", "data:")
    page.on("request", lambda request: request.url.startswith(local) or problems.append(f"fetch: {request.url}"))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))
    page.on("requestfailed", lambda request: problems.append(f"failed load: {request.url[:80]}"))
    page.goto(report.as_uri(), wait_until="load")
    # a broken data URI raises no error anywhere: only the decoded size tells
    broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)")
    problems += [f"image not decoded: {alt}" for alt in broken]
    headings = page.locator("section > h2").all_inner_texts()
    page.screenshot(path=screenshot, full_page=True)
    page.close()
    return headings, problems


@pytest.mark.parametrize("run", ["finished_run", "finished_sequence_run", "tiny_run_with_extras"])
def test_the_report_renders_in_chromium(request, browser, tmp_path, run):
    run_dir = tiny_run(tmp_path, extras=True) if run == "tiny_run_with_extras" else request.getfixturevalue(run)
    report = write_report(run_dir)
    assert report.stat().st_size < 2_000_000
    headings, problems = render(browser, report, tmp_path / "report.png")
    # every real run draws attribution maps of a few test samples (RUN/explain/)
    expected = ["Spec", "Data card", "Learning curves", "Test metrics", "Attributions", "Files"]
    if run == "tiny_run_with_extras":
        expected[4:4] = ["Cross-validation", "Tuning"]
    assert headings == expected
    assert problems == []
    assert Image.open(tmp_path / "report.png").height > 900  # the whole page painted, not one screen
