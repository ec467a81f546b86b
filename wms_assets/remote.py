"""Runs submitted to a Dagster deployment (the aws profile's, on EKS) through its GraphQL API, waited for to the end.

On the aws profile `wms run --job ...` must not run the job on the machine that calls it (a CI runner has no GPU):
the deployment's run launcher starts the run as a pod, and the training job's executor gives each step a pod.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlparse

from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@dataclass(frozen=True)
class RemoteRun:
    run_id: str
    status: DagsterRunStatus
    url: str

    @property
    def success(self) -> bool:
        return self.status == DagsterRunStatus.SUCCESS


def client_for(url: str) -> DagsterGraphQLClient:
    """A GraphQL client for the webserver at url (http(s)://host[:port][/prefix])."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(
            f"{url!r} is not a Dagster webserver address: give http(s)://host[:port], e.g. http://dagster-webserver.dagster"
        )
    return DagsterGraphQLClient(
        parsed.hostname, port_number=parsed.port, use_https=parsed.scheme == "https", path_prefix=parsed.path.rstrip("/")
    )


def submit_and_wait(
    url: str, job: str, run_config: dict | None = None, poll_seconds: float = 10.0, timeout_seconds: float = 6 * 3600
) -> RemoteRun:
    """Submit the job and poll its status until it finishes or the timeout passes (then the run keeps going)."""
    client = client_for(url)
    try:
        run_id = client.submit_job_execution(job, run_config=run_config or {})
    except DagsterGraphQLClientError as error:
        raise RuntimeError(f"the Dagster deployment at {url} refused job {job}: {error}") from error
    deadline = time.monotonic() + timeout_seconds
    status = client.get_run_status(run_id)
    while status not in FINISHED and time.monotonic() < deadline:
        time.sleep(poll_seconds)
        status = client.get_run_status(run_id)
    return RemoteRun(run_id, status, f"{url.rstrip('/')}/runs/{run_id}")
