"""`wms status`: one view of the local state: the champion and the challenger, what the local TorchServe serves, the
watched photos and their data version, Dagster's latest runs, and whether Prometheus answers."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import dagster as dg

from wms.core.local_state import MODEL_NAME, StateLayout
from wms.data.versioning import DvcError, pointer_version
from wms.data.watched import WatchedSourceError, read_watched
from wms.monitoring.prometheus import LOCAL_PROMETHEUS_URL
from wms.registry.model_registry import CHALLENGER, CHAMPION, ModelRegistry
from wms.serving.torchserve import LocalTorchServe, TorchServeError
from wms_assets.constants import DATA_FOLDER, RUN_REASON_TAG

LATEST_RUNS = 5


@dataclass(frozen=True)
class VersionState:
    alias: str
    version: str
    test_mean_iou: str
    test_mean_dice: str
    trained_on: str
    data_version: str


@dataclass(frozen=True)
class RunState:
    run_id: str
    job: str
    status: str
    started: str
    reason: str


@dataclass
class Status:
    model: str
    versions: list[VersionState] = field(default_factory=list)
    served_version: str | None = None
    inference_url: str = ""
    canary: dict | None = None
    """{"version": ..., "weight": ...} while a candidate takes a share of the requests beside the version in service."""
    watched: str = ""
    data_version: str | None = None
    runs: list[RunState] = field(default_factory=list)
    prometheus_url: str = LOCAL_PROMETHEUS_URL
    prometheus_up: bool = False
    problems: list[str] = field(default_factory=list)
    """What could not be read, and why (the rest is still reported)."""

    def as_json(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """The status as a person reads it."""
        lines = [f"model {self.model}"]
        for state in self.versions:
            lines.append(
                f"  {state.alias:<10} version {state.version}: test IoU {state.test_mean_iou}, Dice {state.test_mean_dice}, "
                f"trained on {state.trained_on} (data {state.data_version[:12] or '?'})"
            )
        if not self.versions:
            lines.append("  no champion nor challenger yet: `wms run` trains and registers one")
        served = f"version {self.served_version} at {self.inference_url}" if self.served_version else "nothing"
        if self.canary:
            served += f"; canary: version {self.canary['version']} takes {self.canary['weight']} % (wms serve canary)"
        lines.append(f"serving    {served}")
        lines.append(f"photos     {self.watched}")
        lines.append(f"data       version {self.data_version or 'none yet (no dataset materialized)'}")
        lines.append("runs       " + ("" if self.runs else "none yet"))
        lines.extend(f"  {run.started}  {run.status:<9} {run.job:<15} {run.run_id[:8]}  {run.reason}" for run in self.runs)
        lines.append(f"prometheus {self.prometheus_url} {'answers' if self.prometheus_up else 'does not answer'}")
        lines.extend(f"could not read: {problem}" for problem in self.problems)
        return lines


def local_status(layout: StateLayout, instance: dg.DagsterInstance, prometheus_url: str = LOCAL_PROMETHEUS_URL) -> Status:
    status = Status(MODEL_NAME, prometheus_url=prometheus_url)
    _read_versions(status, ModelRegistry(layout.mlflow_tracking_uri, MODEL_NAME))
    server = LocalTorchServe.of_home(layout.torchserve_home)
    status.inference_url = server.inference_url
    try:
        status.served_version = server.served_version(MODEL_NAME)
        canary = server.canary(MODEL_NAME) if status.served_version else None
        status.canary = {"version": canary.version, "weight": canary.weight} if canary else None
    except TorchServeError as error:  # another state's server on these ports: it refuses this state's (absent) key
        status.problems.append(f"what {server.inference_url} serves: {error}")
    try:
        status.watched = read_watched(layout.watched_source).describe()
    except WatchedSourceError as error:
        status.problems.append(str(error))
    try:
        status.data_version = pointer_version(layout.dvc_repo / f"{DATA_FOLDER}.dvc")
    except DvcError:
        status.data_version = None
    status.runs = [_run_state(record) for record in instance.get_run_records(limit=LATEST_RUNS)]
    status.prometheus_up = _answers(f"{prometheus_url}/-/ready")
    return status


def _read_versions(status: Status, registry: ModelRegistry) -> None:
    for alias in (CHAMPION, CHALLENGER):
        version = registry.version_by_alias(alias)
        if version is None:
            continue
        tags = version.tags
        status.versions.append(
            VersionState(
                alias,
                str(version.version),
                tags.get("test_mean_iou", "?"),
                tags.get("test_mean_dice", "?"),
                tags.get("trained_on", "unknown"),
                tags.get("data_version", ""),
            )
        )


def _run_state(record: dg.RunRecord) -> RunState:
    run = record.dagster_run
    started = datetime.fromtimestamp(record.start_time, UTC).isoformat(timespec="seconds") if record.start_time else "queued"
    return RunState(run.run_id, run.job_name, run.status.value, started, run.tags.get(RUN_REASON_TAG, "started by hand"))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False
