"""augtrain serve: a run's bundle behind HTTP on Ray Serve, answering as `augtrain predict` does; bad requests refused."""

import base64
import io
import json
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from augtrain.cli import app
from augtrain.errors import BadInput
from augtrain.modalities.sequence.ucr import find_dataset
from augtrain.serving.endpoint import is_loopback, start_endpoint
from augtrain.serving.predict import predict
from augtrain.serving.request import MAX_BODY_BYTES, MAX_INPUTS
from augtrain.training.plan import PlanError, plan_replicas
from conftest import alive_actors
from PIL import Image
from test_predict import run_test_split
from test_report import browser  # noqa: F401  (the fixture: Debian's chromium, or a skip)
from test_ucr import read_series
from typer.testing import CliRunner

TOKEN = "a-test-token-of-32-characters-xx"
SERIES_BATCH_WAIT_S = 3  # how long the series endpoint's batches may wait to fill


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(ray_session, finished_run, finished_sequence_run):
    """One Serve start for the module: the image run at / (token required), the series run at /series (loopback,
    no token, batches that may wait SERIES_BATCH_WAIT_S to fill), both on the session's Ray."""
    from ray import serve

    port = free_port()
    lines = []
    images = start_endpoint(finished_run, port=port, token=TOKEN, max_batch_size=16, batch_wait_ms=20, echo=lines.append)
    series = start_endpoint(finished_sequence_run, port=port, name="series", route_prefix="/series",
                            batch_wait_ms=1000 * SERIES_BATCH_WAIT_S, echo=lines.append)
    assert images == f"http://127.0.0.1:{port}" and series == f"http://127.0.0.1:{port}/series"
    assert lines[0] == "plan: 1 replica(s) x 1 CPU (1 torch thread(s) each)"
    yield images, series
    serve.shutdown()


def call(url: str, body: bytes | None = None, content_type: str = "application/json", token: str | None = TOKEN,
         headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={**({"Content-Type": content_type} if body is not None else {}),
                                                              **(headers or {})})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post_json(url: str, inputs, **kwargs) -> tuple[int, dict]:
    return call(f"{url}/predict", json.dumps({"inputs": inputs}).encode(), **kwargs)


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(out, format="PNG")
    return out.getvalue()


def multipart(files: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = "augtrain-test-boundary"
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n"
        for name, content in files.items()
    ) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def declared_too_large(url: str) -> tuple[int, dict]:
    """A request declaring a body over the limit, answered before the body is sent."""
    import http.client

    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.putrequest("POST", "/predict")
    for name, value in (("Authorization", f"Bearer {TOKEN}"), ("Content-Type", "application/json"),
                        ("Content-Length", str(MAX_BODY_BYTES + 1))):
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    try:
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_streamed_body_is_cut_at_the_limit():
    import asyncio

    from augtrain.serving.request import RequestError, read_body

    class Streamed:  # a chunked upload: no Content-Length
        headers = {}

        async def stream(self):
            for _ in range(5):
                yield b"x" * 1000

    assert asyncio.run(read_body(Streamed(), limit=5000)) == b"x" * 5000
    with pytest.raises(RequestError, match="body too large: more than 4999 bytes") as refused:
        asyncio.run(read_body(Streamed(), limit=4999))
    assert refused.value.status == 413


def assert_same(answer: dict, row: dict, classes: list[str]) -> None:
    """A served answer against `augtrain predict`'s row for the same input."""
    assert answer["class"] == row["predicted"]
    assert answer["probability"] == pytest.approx(row["probability"], abs=1e-5)
    assert list(answer["probabilities"]) == classes
    assert [answer["probabilities"][c] for c in classes] == pytest.approx([row[f"p_{c}"] for c in classes], abs=1e-5)


def test_served_images_equal_predict(served, finished_run, tmp_path):
    url, _ = served
    images, labels = run_test_split(finished_run)
    images = images[:48]
    folder = tmp_path / "images"
    (folder / "sent").mkdir(parents=True)  # predict names an input by its path in the folder
    files = {f"sent/{i}.png": png(image) for i, image in enumerate(images)}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    predict(finished_run, folder, tmp_path / "preds.parquet", echo=lambda line: None)
    rows = {row["id"]: row for row in pq.read_table(tmp_path / "preds.parquet").to_pylist()}
    status, model = call(f"{url}/model")
    assert status == 200 and model["input"] == {"kind": "image", "shape": [8, 8, 1], "dtype": "uint8", "fixed_shape": True}
    classes = model["classes"]
    assert model["metrics"]["accuracy"] == json.loads((finished_run / "metrics.json").read_text())["test"]["accuracy"]
    assert len(model["bundle"]) == 64 and model["limits"] == {"max_body_bytes": MAX_BODY_BYTES, "max_inputs": MAX_INPUTS}

    # 12 clients at once, 4 images each: batched across requests, each answered in its own order
    names = list(files)
    chunks = [names[i : i + 4] for i in range(0, len(names), 4)]
    with ThreadPoolExecutor(12) as pool:
        replies = list(pool.map(lambda chunk: post_json(url, [base64.b64encode(files[n]).decode() for n in chunk]), chunks))
    for chunk, (status, reply) in zip(chunks, replies):
        assert status == 200, reply
        assert [p["input"] for p in reply["predictions"]] == [f"inputs[{i}]" for i in range(len(chunk))]
        for name, answer in zip(chunk, reply["predictions"]):
            assert_same(answer, rows[name], classes)

    # the same files as a multipart upload
    body, content_type = multipart({n: files[n] for n in names[:8]})
    status, reply = call(f"{url}/predict", body, content_type)
    assert status == 200, reply
    assert [p["input"] for p in reply["predictions"]] == names[:8]
    for name, answer in zip(names[:8], reply["predictions"]):
        assert_same(answer, rows[name], classes)
    # any format collect reads: a JPEG of the first image answers as predict answers the same JPEG
    jpeg = io.BytesIO()
    Image.fromarray(images[0][..., 0]).save(jpeg, format="JPEG")
    (folder / "sent" / "first.jpg").write_bytes(jpeg.getvalue())
    predict(finished_run, folder, tmp_path / "again.parquet", echo=lambda line: None)
    again = {row["id"]: row for row in pq.read_table(tmp_path / "again.parquet").to_pylist()}
    status, reply = post_json(url, [base64.b64encode(jpeg.getvalue()).decode()])
    assert status == 200 and len(again) == len(images) + 1
    assert_same(reply["predictions"][0], again["sent/first.jpg"], classes)


def test_served_series_equal_predict(served, finished_sequence_run, tmp_path):
    _, url = served
    _, test_file = find_dataset("GunPoint", None)
    predict(finished_sequence_run, test_file, tmp_path / "preds.parquet", echo=lambda line: None)
    rows = {row["id"]: row for row in pq.read_table(tmp_path / "preds.parquet").to_pylist()}
    series = read_series(test_file)
    status, model = call(f"{url}/model", token=None)  # loopback, no token: open
    assert status == 200 and model["input"]["kind"] == "sequence" and model["input"]["shape"][-1] == 1
    classes = model["classes"]
    sent = [(f"GunPoint_TEST.ts:{line}", values) for line, values in list(zip(series.lines, series.values))[:24]]
    # a series as T numbers (one channel) or T x C; a shorter one too: the model takes any length
    inputs = [values[:, 0].tolist() if i % 2 else values.tolist() for i, (_, values) in enumerate(sent)]
    status, reply = post_json(url, inputs, token=None)
    assert status == 200, reply
    for (id_, _), answer in zip(sent, reply["predictions"]):
        assert_same(answer, rows[id_], classes)
    status, reply = post_json(url, [sent[0][1][:100, 0].tolist()], token=None)
    assert status == 200 and set(reply["predictions"][0]["probabilities"]) == set(classes)
    # a missing value (null) is interpolated as in a .ts file's "?"
    gap = sent[0][1][:, 0].tolist()
    gap[10] = None
    status, reply = post_json(url, [gap], token=None)
    assert status == 200 and reply["predictions"][0]["class"] in classes


def test_a_lone_request_is_scored_at_once_not_held_for_the_batch_wait(served):
    _, url = served
    series = np.sin(np.linspace(0, 6, 150)).tolist()
    assert post_json(url, [series], token=None)[0] == 200  # the replica warm
    started = time.monotonic()
    for _ in range(3):  # one at a time: each finds the replica idle
        status, reply = post_json(url, [series], token=None)
        assert status == 200, reply
    assert time.monotonic() - started < SERIES_BATCH_WAIT_S  # held for the wait, each would take it whole


def test_bad_requests_get_a_4xx_naming_the_problem(served, finished_run):
    url, series_url = served
    image = png(run_test_split(finished_run)[0][0])
    good = base64.b64encode(image).decode()
    big = io.BytesIO()
    Image.new("L", (16, 16)).save(big, format="PNG")
    cases = [
        (call(f"{url}/predict", b'{"inputs": [1,'), 400, "malformed JSON"),
        (call(f"{url}/predict", b'{"inputs": [[NaN]]}'), 400, "NaN is not a JSON number"),
        (call(f"{url}/predict", b"\xff\xfe"), 400, "not UTF-8"),
        (call(f"{url}/predict", b'[1, 2]'), 400, 'expected a JSON object {"inputs": [...]}'),
        (call(f"{url}/predict", b'{"inputs": []}'), 400, "no inputs"),
        (call(f"{url}/predict", b"x", "text/plain"), 415, "unsupported content type"),
        (post_json(url, [good] * (MAX_INPUTS + 1)), 400, f"too many inputs: {MAX_INPUTS + 1}"),
        (post_json(url, [good, "%%%"]), 422, "inputs[1]: not base64"),
        (post_json(url, [good, 5]), 422, "inputs[1]: expected a file's bytes in base64"),
        (post_json(url, [base64.b64encode(b"not an image").decode()]), 422, "inputs[0]: not a readable image"),
        (post_json(url, [base64.b64encode(image[:40]).decode()]), 422, "inputs[0]: "),
        (post_json(url, [""]), 422, "inputs[0]: empty file (0 bytes)"),
        (post_json(url, [good, base64.b64encode(big.getvalue()).decode()]), 422, "inputs[1]: wrong shape: 16x16 (expected 8x8)"),
        (post_json(url, [[1, 2, 3]]), 422, "inputs[0]: not an image file"),
        (declared_too_large(url), 413, "body too large"),
        (call(f"{url}/predict", *multipart({"a.png": image, "b.txt": b"hello"})), 422, "b.txt: not a readable image"),
        (post_json(series_url, [[[1.0, 2.0]] * 50], token=None), 422, "inputs[0]: wrong channels: 2 in a 1-channel model"),
        (post_json(series_url, [[1.0, "2"]], token=None), 422, "inputs[0]: missing or non-numeric value"),
        (call(f"{series_url}/predict", b'{"inputs": [[1.0, 1e400]]}', token=None), 422, "inputs[0]: infinite value"),
        (post_json(series_url, [[[1.0], [2.0, 3.0]]], token=None), 422, "inputs[0]: wrong shape"),
        (post_json(series_url, [[None, None]], token=None), 422, "inputs[0]: a channel with no values"),
        (post_json(series_url, [good], token=None), 422, "inputs[0]: not a series"),
        (post_json(series_url, [[0.5] * 151], token=None), 422, "inputs[0]: too long: 151 steps; the model takes at most 150"),
        (call(f"{series_url}/predict", b'{"inputs": [' + b"[" * 600 + b"]" * 600 + b"]}", token=None), 422,
         "inputs[0]: lists or objects nested deeper than 8 levels"),
    ]
    for (status, reply), expected_status, message in cases:
        assert (status, message in reply.get("error", "")) == (expected_status, True), (message, status, reply)

    # a bad input fails only its own request, while others are batched with it
    def one(n):
        return post_json(url, [good, "bad" if n % 3 == 0 else good])

    with ThreadPoolExecutor(9) as pool:
        replies = list(pool.map(one, range(9)))
    assert [status for status, _ in replies] == [422 if n % 3 == 0 else 200 for n in range(9)]
    assert all(len(reply["predictions"]) == 2 for status, reply in replies if status == 200)
    assert call(f"{url}/healthz") == (200, {"status": "ok"})


def test_a_token_guards_every_request(served):
    url, series_url = served
    for path in ("/healthz", "/model", "/openapi.json"):
        for token in (None, "wrong-token-of-enough-characters"):
            status, reply = call(f"{url}{path}", token=token)
            assert status == 401 and "token" in reply["error"], (path, token)
    status, reply = call(f"{url}/predict", b"{not even json", token=None)
    assert status == 401  # refused before the body is read
    status, spec = call(f"{url}/openapi.json")
    assert status == 200 and "/predict" in spec["paths"] and "/model" in spec["paths"]
    assert call(f"{url}/docs")[0] == 404  # Swagger's page loads its assets from a CDN: the try-it page instead
    # the try-it page holds nothing of the model: open, and held to this endpoint by its policy
    with urllib.request.urlopen(f"{url}/", timeout=30) as response:
        policy = response.headers["Content-Security-Policy"]
        assert b"<script>" in response.read() and "http" not in policy and "connect-src 'self'" in policy
    assert call(f"{series_url}/healthz", token=None) == (200, {"status": "ok"})


def test_the_page_predicts_a_picked_file_and_a_typed_series_in_chromium(served, browser, finished_run,  # noqa: F811
                                                                         finished_sequence_run, tmp_path):
    url, series_url = served
    image = png(run_test_split(finished_run)[0][3])
    (tmp_path / "digit.png").write_bytes(image)
    status, reply = call(f"{url}/predict", *multipart({"digit.png": image}))
    assert status == 200, reply
    expected = reply["predictions"][0]
    _, test_file = find_dataset("GunPoint", None)
    series = read_series(test_file).values[0][:, 0].tolist()
    status, reply = post_json(series_url, [series], token=None)
    assert status == 200, reply
    expected_series = reply["predictions"][0]

    context = browser.new_context()
    page = context.new_page()
    problems = []
    origin = url.removesuffix("/")
    page.on("request", lambda r: r.url.startswith((origin, "blob:")) or problems.append(f"fetch: {r.url}"))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))
    page.goto(f"{url}/#token={TOKEN}", wait_until="load")  # a link carrying the token in its fragment
    page.locator("#about", has_text="Takes image").wait_for(timeout=30_000)
    page.set_input_files("#file", str(tmp_path / "digit.png"))
    page.locator("#result").wait_for(state="visible", timeout=30_000)
    assert page.locator("#class").inner_text() == expected["class"]
    assert page.locator("#bars .row").count() == len(expected["probabilities"])
    assert page.locator("#bars .row.best span").first.inner_text() == expected["class"]
    assert page.evaluate("document.getElementById('preview').naturalWidth") == 8  # the picked image, shown
    assert "#token" not in page.url  # dropped from the address bar
    page.screenshot(path=tmp_path / "page.png", full_page=True)

    page.goto(f"{series_url}/", wait_until="load")  # the series model: no token, a typed series
    page.locator("#about", has_text="Takes sequence").wait_for(timeout=30_000)
    page.fill("#series", ", ".join(map(str, series)))
    page.click("#send-series")
    page.locator("#result").wait_for(state="visible", timeout=30_000)
    assert page.locator("#class").inner_text() == expected_series["class"]
    assert problems == []
    context.close()

    # without the token the page asks for it, then works
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{url}/", wait_until="load")
    page.locator("#error", has_text="missing or wrong token").wait_for(timeout=30_000)
    assert page.locator("#auth").is_visible()
    page.fill("#token", TOKEN)
    page.click("#auth button")
    page.locator("#about", has_text="Takes image").wait_for(timeout=30_000)
    assert page.locator("#auth").is_hidden()
    context.close()


def test_serve_refuses_bad_settings_before_starting(finished_run):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
    with pytest.raises(BadInput, match="at least 16 characters"):
        start_endpoint(finished_run, token="short")
    result = CliRunner().invoke(app, ["serve", str(finished_run), "--max-batch-size", "0"])
    assert result.exit_code == 2 and "--max-batch-size 0: between 1 and 4096" in result.output
    result = CliRunner().invoke(app, ["serve", str(finished_run.parent / "nothing")])
    assert result.exit_code == 2 and "not a model bundle or run dir" in result.output


def test_write_config_is_a_serve_deploy_file_whose_application_builds(finished_run, tmp_path, monkeypatch):
    """`augtrain serve RUN --write-config FILE`: Serve's own schema reads the file and its builder binds the
    application `serve deploy` would run (no cluster needed)."""
    import shutil

    import yaml
    from augtrain.artifacts.bundle import load_bundle
    from augtrain.artifacts.signing import BundleError
    from augtrain.serving.cluster_app import ServeArgs
    from augtrain.serving.scorer import local_bundle
    from pydantic import ValidationError
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve.deployment import Application
    from ray.serve.schema import ServeDeploySchema

    monkeypatch.setenv("AUGTRAIN_SERVE_TOKEN", TOKEN)  # --token's variable: never written
    out = tmp_path / "serve.yaml"
    result = CliRunner().invoke(app, ["serve", str(finished_run), "--write-config", str(out), "--host", "0.0.0.0",
                                      "--replicas", "2", "--max-batch-size", "8", "--bundle-location", "s3://models/digits"])
    assert result.exit_code == 0 and f"serve deploy {out}" in result.output, result.output
    text = out.read_text()
    assert TOKEN not in text and "serve deploy serve.yaml" in text.splitlines()[0]
    config = ServeDeploySchema.model_validate(yaml.safe_load(text))
    assert config.http_options.host == "0.0.0.0" and config.http_options.request_timeout_s == 60
    [application] = config.applications
    digest = load_bundle(finished_run).digest
    assert application.args == {"bundle": "s3://models/digits", "digest": digest, "public_key": None,
                                "token_env": "AUGTRAIN_SERVE_TOKEN", "replicas": 2, "cpus_per_replica": 1.0,
                                "max_batch_size": 8, "batch_wait_ms": 5.0}
    built = call_user_app_builder_with_args_if_necessary(import_attr(application.import_path), application.args)
    assert isinstance(built, Application)
    ingress = built._bound_deployment
    scorer_app, token, cluster_token, token_env = ingress.init_args
    scorer = scorer_app._bound_deployment
    assert (ingress.name, ingress.num_replicas, ingress.ray_actor_options["num_cpus"]) == ("Endpoint", 2, 0)
    assert (scorer.name, scorer.num_replicas, scorer.ray_actor_options["num_cpus"]) == ("Scorer", 2, 1)
    assert (token, cluster_token, token_env) == (None, False, "AUGTRAIN_SERVE_TOKEN")
    assert scorer.init_args[0] == "s3://models/digits" and scorer.init_args[-1] == digest

    # what the builder refuses; what the writer refuses
    builder = import_attr(application.import_path)
    with pytest.raises(ValidationError, match="token"):
        call_user_app_builder_with_args_if_necessary(builder, {"bundle": "b", "token": TOKEN})  # never the token
    with pytest.raises(BadInput, match="--max-batch-size 0"):
        call_user_app_builder_with_args_if_necessary(builder, {"bundle": "b", "max_batch_size": 0})
    result = CliRunner().invoke(app, ["serve", str(finished_run), "--write-config", str(out), "--token-env", "A B"])
    assert result.exit_code == 2 and "--token-env: String should match pattern" in result.output
    assert ServeArgs(bundle="b").token_env == "AUGTRAIN_SERVE_TOKEN"
    # a bundle kept at a URI: each replica copies it into a private folder, verifies it there, removes it
    with local_bundle(f"file://{finished_run.resolve()}") as folder:
        assert load_bundle(folder).digest == digest
    assert not Path(folder).exists()
    # only the bundle's own files are copied, each within its size bound
    shutil.copytree(finished_run / "model", tmp_path / "kept" / "model")
    (tmp_path / "kept" / "model" / "notes.bin").write_bytes(bytes(1 << 20))
    with local_bundle(f"file://{tmp_path / 'kept'}") as folder:
        assert load_bundle(folder).digest == digest and not (Path(folder) / "notes.bin").exists()
    (tmp_path / "kept" / "model" / "classes.json").write_bytes(b" " * (17 << 20))
    with pytest.raises(BundleError, match=r"classes.json: 17825792 bytes, more than a bundle's may be \(16777216\)"):
        with local_bundle(f"file://{tmp_path / 'kept'}"):
            pass


def test_replica_plan():
    assert plan_replicas(1, 2).describe() == "plan: 1 replica(s) x 1 CPU (1 torch thread(s) each)"
    assert plan_replicas(4, 2).cpus_per_replica == 0.5
    assert plan_replicas(2, 8, cpus_per_replica=4).threads_per_replica == 4
    with pytest.raises(PlanError, match="do not fit"):
        plan_replicas(9, 2)


def test_a_killed_replica_fails_only_its_requests_with_a_503_and_serve_restarts_it(served, finished_run):
    """Runs last: it kills the image model's one Scorer replica while clients keep sending requests."""
    import os
    import signal
    import threading
    import time


    url, _ = served
    images = [base64.b64encode(png(image)).decode() for image in run_test_split(finished_run)[0][:4]]

    def scorers() -> list[int]:
        return alive_actors("ServeReplica:augtrain:Scorer")

    def timed() -> tuple[int, float, float, str | None]:
        started = time.monotonic()
        request = urllib.request.Request(f"{url}/predict", json.dumps({"inputs": images}).encode(),
                                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
        try:
            with urllib.request.urlopen(request, timeout=90) as response:
                status, retry = response.status, None
        except urllib.error.HTTPError as error:
            status, retry = error.code, error.headers.get("Retry-After")
        return status, started, time.monotonic(), retry

    [pid] = scorers()
    stop, ends = threading.Event(), []

    def client():
        while not stop.is_set():
            ends.append(timed())

    with ThreadPoolExecutor(6) as pool:
        clients = [pool.submit(client) for _ in range(6)]
        time.sleep(1.5)
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        time.sleep(1.0)
        stop.set()
        for running in clients:
            running.result(timeout=120)  # every client's last request ended: none hangs
    in_flight = [(status, end - start) for status, start, end, _ in ends if start < killed < end]
    assert in_flight and {status for status, _ in in_flight} <= {200, 503}, in_flight
    assert {status for status, *_ in ends} <= {200, 503}
    assert all(end - start < 60 for _, start, end, _ in ends)  # within the proxy's timeout, not cut by it
    assert all(retry is not None and int(retry) > 0 for status, *_, retry in ends if status == 503)
    # Serve has started a new replica, which answers
    deadline = time.monotonic() + 60
    while (pids := scorers()) in ([], [pid]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(pids) == 1 and pids != [pid]
    assert timed()[0] == 200
    print(f"killed a replica under load: {len(in_flight)} request(s) in flight ended "
          f"{sorted(status for status, _ in in_flight)} within {max(s for _, s in in_flight):.1f} s")


def test_a_scorer_that_cannot_answer_is_a_503_with_retry_after():
    import asyncio

    from augtrain.serving.endpoint import RETRY_AFTER_S, answered
    from ray.exceptions import ActorDiedError
    from ray.serve.exceptions import BackPressureError

    async def fails(exc):
        raise exc

    def run(coroutine):  # in a thread of its own: the browser fixture's event loop may hold this one
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coroutine).result()

    for exc in (ActorDiedError(), BackPressureError(num_queued_requests=9, max_queued_requests=8)):
        response = run(answered(fails(exc)))
        assert response.status_code == 503 and response.headers["Retry-After"] == str(RETRY_AFTER_S)
        assert "retry" in json.loads(response.body)["error"]

    async def works():
        return {"predictions": []}

    assert run(answered(works())) == {"predictions": []}
