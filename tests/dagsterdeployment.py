"""A real Dagster deployment for tests: the webserver and the daemon as subprocesses on a temporary DAGSTER_HOME.

Runs and sensor ticks are read the way the UI reads them, through the webserver's GraphQL API. Every process is
started in a session of its own and killed with its children (the daemon's run workers) when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LOCATION = "wms"
REPOSITORY = "__repository__"
RUNS_QUERY = "{ runsOrError { __typename ... on Runs { results { runId status jobName tags { key value } } } } }"
TICKS_QUERY = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status ticks(limit: 100) { tickId status timestamp skipReason runIds error { message } } } }
    ... on PythonError { message }
  }
}"""


def write_workspace(folder: Path, code: str) -> Path:
    """A workspace.yaml with one code location, `wms`, made of this Python source."""
    (folder / "definitions.py").write_text(code)
    workspace = folder / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_file:\n      relative_path: definitions.py\n"
        f"      location_name: {LOCATION}\n      working_directory: {Path.cwd()}\n"
    )
    return workspace


@dataclass
class DagsterDeployment:
    dagster_home: Path
    workspace: Path
    port: int
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, name: str) -> None:
        """Start `webserver` or `daemon`; the webserver is waited for until it answers."""
        binary = Path(sys.executable).with_name(f"dagster-{name}")
        command = [str(binary), "-w", str(self.workspace)]
        command = (
            [*command, "-h", "127.0.0.1", "-p", str(self.port)] if name == "webserver" else [str(binary), "run", *command[1:]]
        )
        env = {**os.environ, "DAGSTER_HOME": str(self.dagster_home), "HF_HUB_OFFLINE": "1"}
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(command, stdout=log, stderr=log, env=env, start_new_session=True)
        if name == "webserver":
            self.wait_for(self._answers, 180, "the webserver to answer")

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        for signum, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(process.pid, signum)
            except ProcessLookupError:
                return
            try:
                process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # run workers left behind in the group

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        if answer.get("errors"):
            raise RuntimeError(f"GraphQL errors: {answer['errors']}")
        return answer["data"]

    def runs(self) -> list[dict]:
        """Every run, newest first: runId, status, jobName and tags as a dict."""
        results = self.graphql(RUNS_QUERY)["runsOrError"]["results"]
        return [{**run, "tags": {tag["key"]: tag["value"] for tag in run["tags"]}} for run in results]

    def ticks(self, sensor: str) -> list[dict]:
        """The sensor's ticks, newest first: status, timestamp, skipReason, runIds, error."""
        selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": sensor}
        found = self.graphql(TICKS_QUERY, {"selector": selector})["sensorOrError"]
        if found["__typename"] != "Sensor":
            raise RuntimeError(f"sensor {sensor}: {found}")
        return found["sensorState"]["ticks"]

    def wait_for(self, condition: Callable[[], object], timeout_s: float, what: str, every_s: float = 2.0):
        """Poll until `condition` returns something truthy, and return it; fail naming what was awaited and the logs."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    exited = f"dagster-{name} exited ({process.returncode})"
                    raise AssertionError(f"{exited} while waiting for {what}: {self.tail(name)}")
            result = condition()
            if result:
                return result
            time.sleep(every_s)
        raise AssertionError(f"waited {timeout_s:.0f} s for {what}; daemon log: {self.tail('daemon')}")

    def tail(self, name: str, lines: int = 30) -> str:
        log = self.logs / f"{name}.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False
