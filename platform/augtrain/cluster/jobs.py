"""A Ray cluster's Jobs API: `status`, `list`, `logs` and `stop` through its REST endpoints, `submit` and
`logs --follow` through Ray's SDK.

Ray's `JobSubmissionClient` speaks the same documented REST API (GET /api/jobs/, GET /api/jobs/ID, GET
/api/jobs/ID/logs, POST /api/jobs/ID/stop), but importing it costs about 0.6 s; with the standard library's HTTP
client these commands answer in about a quarter of a second and never import Ray. Submitting (the runtime env
packaged and uploaded) and following logs (a websocket) stay with the SDK.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

HOW_TO_AUTH = (
    "give the cluster's token in RAY_AUTH_TOKEN, in a file named by RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token "
    "(print it on the head with `ray get-auth-token`)"
)
TIMEOUT_S = 60  # for one request: the dashboard answers in milliseconds, a cluster under load in seconds
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


class SubmitError(Exception):
    """A job that cannot be sent, or a cluster that cannot be reached or refuses us; one line."""


def _token_source() -> str:
    """Where Ray reads the auth token from, in Ray's order of precedence."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    return os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token"


def auth_token() -> str | None:
    """The token as Ray's loader reads it: RAY_AUTH_TOKEN, else the first line of the file RAY_AUTH_TOKEN_PATH
    names (which must hold one), else of ~/.ray/auth_token, whitespace trimmed; None without one."""
    if token := os.environ.get("RAY_AUTH_TOKEN"):
        return token
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    try:
        with Path(named or "~/.ray/auth_token").expanduser().open(encoding="utf-8") as file:
            token = file.readline().strip()
    except (OSError, UnicodeDecodeError):
        token = ""
    if named and not token:
        raise SubmitError(f"cannot read the Ray auth token from {named}; {HOW_TO_AUTH}")
    return token or None


def dashboard(address: str | None) -> str:
    """The dashboard's URL, in Ray's order: RAY_API_SERVER_ADDRESS, RAY_ADDRESS, then `address`. An HTTP address
    is used as it is; another (none: the local Ray, `auto`, HOST:PORT, ray://) is resolved by Ray itself."""
    address = os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS") or address
    if address and address.startswith(("http://", "https://")):
        return address.rstrip("/")
    from ray.dashboard.utils import get_address_for_submission_client
    from ray.exceptions import RayError

    try:
        return get_address_for_submission_client(address)
    except (ConnectionError, RuntimeError, ValueError, RayError) as exc:  # no Ray there, or its GCS does not answer
        raise SubmitError(f"cannot find a Ray dashboard at {address or 'the local Ray'}: {exc}") from None


def describe(info: dict) -> str:
    """A job's status and why, in one line: a failure's exit code rather than the log tail Ray appends."""
    status = info["status"]
    if status == "FAILED" and info.get("driver_exit_code") is not None:
        why = f"exit code {info['driver_exit_code']}"
    else:
        why = next(iter((info.get("message") or "").strip().splitlines()), "")
    return status + (f" ({why})" if why else "")


class Cluster:
    """The Jobs API of one Ray cluster; every failure is one SubmitError line."""

    def __init__(self, address: str | None = None):
        self.where = dashboard(address)
        token = auth_token()
        # sent whether or not this machine runs Ray in token mode: a token cluster needs it either way
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _unreachable(self) -> SubmitError:
        return SubmitError(f"cannot reach a Ray dashboard at {self.where}; is the cluster up? "
                           "(`ray dashboard cluster.yaml` forwards it to http://127.0.0.1:8265)")

    def _refused(self, code: int) -> SubmitError | None:
        """The error for an HTTP status that means the token was missing (401) or wrong (403)."""
        if code == 401:
            return SubmitError(f"{self.where} requires a Ray auth token; {HOW_TO_AUTH}")
        if code == 403:
            return SubmitError(f"{self.where} rejected the Ray auth token from {_token_source()}; {HOW_TO_AUTH}")
        return None

    def _request(self, method: str, path: str):
        """One call to the REST API; its JSON answer."""
        request = urllib.request.Request(self.where + path, method=method, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:  # the API answered with an error, e.g. an unknown job id
            body = exc.read().decode("utf-8", "replace").strip()
            raise self._refused(exc.code) or SubmitError(
                f"{next(iter(body.splitlines()), exc.reason)} (HTTP {exc.code} from {self.where}{path})") from None
        except (OSError, http.client.HTTPException):  # refused, timed out, or not speaking HTTP
            raise self._unreachable() from None
        except ValueError:  # not JSON: something else listens there
            raise SubmitError(f"{self.where}{path} did not answer as a Ray Jobs API does") from None

    def info(self, job_id: str) -> dict:
        """The job's details (Ray's JobDetails as JSON: status, message, driver_exit_code, ...)."""
        return self._request("GET", f"/api/jobs/{job_id}")

    def logs(self, job_id: str) -> str:
        return self._request("GET", f"/api/jobs/{job_id}/logs")["logs"]

    def stop(self, job_id: str) -> bool:
        """Ask the job to stop; False if it had already ended."""
        return self._request("POST", f"/api/jobs/{job_id}/stop")["stopped"]

    def jobs(self) -> list[dict]:
        """Submitted jobs (not drivers that attached directly), oldest first."""
        jobs = [job for job in self._request("GET", "/api/jobs/") if job.get("submission_id")]
        return sorted(jobs, key=lambda job: job.get("start_time") or 0)

    @contextmanager
    def _sdk_errors(self):
        import aiohttp
        import requests
        from ray.exceptions import AuthenticationError

        try:
            yield
        except AuthenticationError:
            raise self._refused(403 if self.headers else 401) from None
        except (ConnectionError, requests.ConnectionError, aiohttp.ClientConnectionError):
            raise self._unreachable() from None
        except RuntimeError as exc:  # the Jobs API answered with an error
            raise SubmitError(str(exc).strip().splitlines()[0]) from None

    def _client(self):
        """Ray's SDK client (it checks the cluster's version first); call it inside `_sdk_errors`."""
        from ray.job_submission import JobSubmissionClient

        # Ray's client logs every packaging step and the close of each log stream; the CLI says what matters
        for name in ("ray._private.runtime_env", "ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk"):
            logging.getLogger(name).setLevel(logging.ERROR)
        return JobSubmissionClient(self.where, headers=self.headers)

    def submit(self, entrypoint: str, runtime_env: dict, name: str) -> str:
        """Upload the runtime env and start the job; its submission id."""
        with self._sdk_errors():
            return self._client().submit_job(entrypoint=entrypoint, runtime_env=runtime_env,
                                             metadata={"augtrain_job": name})

    def follow(self, job_id: str, echo: Callable[[str], None]) -> dict:
        """Echo the job's logs as they come until it ends; its final details."""

        async def tail(client):
            async for chunk in client.tail_job_logs(job_id):
                echo(chunk)

        with self._sdk_errors():
            asyncio.run(tail(self._client()))
        # the log stream closes as the job ends; its status may lag behind by a moment
        while (info := self.info(job_id))["status"] not in TERMINAL:
            time.sleep(0.5)
        return info
