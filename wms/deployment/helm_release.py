"""The serving release on EKS through Helm: render a stage's manifests, `helm upgrade --install` it, check it answers.

Helm runs in-process (helm-python-sdk, Helm 4's engine): no helm binary. A release pins the serving image by digest
(repository@sha256:...) and names the model version it holds; the chart (helm/wms-serving) refuses anything else.
Helm 4 calls Helm 3's `--atomic` `rollback-on-failure`: a failed upgrade is rolled back to the revision that served
before it, a failed first install is removed, and the caller gets a HelmReleaseError with Helm's reason.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm

from wms.core.project import PROJECT_ROOT
from wms.deployment.container_image import DIGEST, FRONT_DOOR_PORT
from wms.deployment.stages import CANARY_RELEASE, CHART_DIR, RELEASE_NAME, Stage, stage

DEFAULT_CHART = PROJECT_ROOT / CHART_DIR
DEFAULT_TIMEOUT_S = 600
"""Long enough for a new node, an image pull and the model's first worker; Helm rolls back when it runs out."""
MAX_HISTORY = 10
"""Revisions Helm keeps per release (one Secret each in the namespace); rollbacks reach back this far."""
SERVICE_PORT = FRONT_DOOR_PORT
CANDIDATE_VALUES = {
    "ingress": {"enabled": False},
    "prometheusRule": {"enabled": False},
    "grafanaDashboard": {"enabled": False},
    "serviceAccount": {"create": False},
}
"""What a canary's candidate release leaves to the release in service: the ALB (whose Ingress splits between the two
releases' Services), the rules and the dashboard (one each per stage), and the service account (its pods run as the
one the release in service made; two releases cannot both own it)."""


def split_values(weight: int) -> dict:
    """The release in service's values that send `weight` percent of its Ingress's requests to the candidate."""
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise HelmReleaseError(f"a canary's weight is a whole percent from 0 to 100, not {weight!r}: nothing was changed")
    return {"canary": {"release": CANARY_RELEASE, "weight": weight}}


class HelmReleaseError(RuntimeError):
    """A render, release or check of the serving release failed; the message says which stage, what and what to do."""


@dataclass(frozen=True)
class ImageReference:
    """The serving image as a release pins it: repository@sha256:<64 hex>, never a tag."""

    repository: str
    digest: str

    @classmethod
    def parse(cls, reference: str) -> ImageReference:
        repository, at, digest = reference.partition("@")
        if not at or not repository:
            raise ValueError(
                f"image {reference!r} is not pinned by digest: give REPOSITORY@sha256:<64 hex digits> "
                "(the digest the image push printed), never a tag"
            )
        if re.search(r":[^/]*$", repository):
            raise ValueError(f"image {reference!r} carries a tag as well as a digest: give REPOSITORY@sha256:... alone")
        if not DIGEST.match(digest):
            raise ValueError(f"image digest {digest!r} is malformed: expected sha256: followed by 64 lowercase hex digits")
        return cls(repository, digest)

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest}"


def release_values(
    stage_name: str,
    model_version: str,
    image: ImageReference | str,
    chart_dir: Path = DEFAULT_CHART,
    overrides: dict | None = None,
) -> dict:
    """The values of one release: the stage's values file (as `helm -f` reads it) under the model version and image,
    and under `overrides` (a canary's split, or what its candidate release leaves out)."""
    target = stage(stage_name)
    try:
        pinned = image if isinstance(image, ImageReference) else ImageReference.parse(image)
    except ValueError as error:
        raise HelmReleaseError(f"the {target.name} release cannot be made: {error}") from error
    values = helm.values_from_yaml(_stage_values_file(target, chart_dir).read_text())
    release = {"model": {"version": str(model_version)}, "image": {"repository": pinned.repository, "digest": pinned.digest}}
    return _merged(_merged(values, release), overrides or {})


def render(
    stage_name: str,
    model_version: str,
    image: ImageReference | str,
    chart_dir: Path = DEFAULT_CHART,
    *,
    release_name: str = RELEASE_NAME,
    overrides: dict | None = None,
) -> dict[str, str]:
    """The manifests of a stage's release as Helm renders them offline, {template path: YAML}, switched-off ones dropped."""
    values = release_values(stage_name, model_version, image, chart_dir, overrides)
    with _load_chart(chart_dir) as chart:
        return _render(chart, stage(stage_name), values, release_name)


def _render(chart: helm.Chart, target: Stage, values: dict, release_name: str = RELEASE_NAME) -> dict[str, str]:
    try:
        manifests = chart.render(values, name=release_name, namespace=target.namespace, is_install=True)
    except helm.HelmError as error:
        raise HelmReleaseError(f"the {target.name} release did not render: {error.detail}") from error
    return {path: text for path, text in manifests.items() if text.strip()}


def write_manifests(manifests: dict[str, str], output: Path) -> list[Path]:
    """Write each manifest to output/<template name>; the folder must be new or empty so no stale object is left in it."""
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise HelmReleaseError(f"{output} is not an empty folder: give a new or empty folder for the rendered manifests")
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for template, text in sorted(manifests.items()):
        path = output / Path(template).name
        path.write_text(text.lstrip("\n"))
        written.append(path)
    return written


def upgrade(
    stage_name: str,
    model_version: str,
    image: ImageReference | str,
    *,
    kubeconfig: Path | None = None,
    kube_context: str | None = None,
    timeout_s: int = DEFAULT_TIMEOUT_S,
    chart_dir: Path = DEFAULT_CHART,
    config: helm.Config | None = None,
    release_name: str = RELEASE_NAME,
    overrides: dict | None = None,
) -> int:
    """`helm upgrade --install --rollback-on-failure --wait --timeout` into the stage's namespace; the new revision.

    The kubeconfig comes from `kubeconfig`, else the usual places (KUBECONFIG, ~/.kube/config, the pod's service
    account). `config` is an already configured connection (it is not closed here). `release_name` and `overrides`
    make a canary's candidate release, or the release in service's split.
    """
    target = stage(stage_name)
    values = release_values(stage_name, model_version, image, chart_dir, overrides)
    description = f"model version {model_version}, image {values['image']['repository']}@{values['image']['digest']}"
    with _load_chart(chart_dir) as chart, _connection(target, kubeconfig, kube_context, config) as cluster:
        _render(chart, target, values, release_name)  # a bad version or digest fails here, before the cluster is contacted
        existing = _has_release(cluster, target, release_name)
        try:
            release = _install_or_upgrade(cluster, chart, target, values, existing, timeout_s, description, release_name)
        except helm.HelmError as error:
            raise HelmReleaseError(_explain(target, error, existing, timeout_s, release_name)) from error
    return int(release["revision"])


def _connection(target: Stage, kubeconfig: Path | None, kube_context: str | None, config: helm.Config | None):
    if config is not None:
        return contextlib.nullcontext(config)
    return helm.Config(kubeconfig_path=kubeconfig, kube_context=kube_context, namespace=target.namespace)


@dataclass(frozen=True)
class Released:
    """What a release runs, as its values say."""

    version: str
    image: str
    canary_weight: int | None = None
    """The candidate's share while the release in service splits its traffic with a canary."""


def released(
    stage_name: str,
    release_name: str = RELEASE_NAME,
    *,
    kubeconfig: Path | None = None,
    kube_context: str | None = None,
    config: helm.Config | None = None,
) -> Released | None:
    """The model version and image a release runs (None when there is no such release)."""
    target = stage(stage_name)
    with _connection(target, kubeconfig, kube_context, config) as cluster:
        if not _has_release(cluster, target, release_name):
            return None
        try:
            values = cluster.get_values(release_name)
        except helm.HelmError as error:
            raise HelmReleaseError(_explain_unread(target, error, release_name)) from error
    split = values.get("canary") or {}
    return Released(
        str(values["model"]["version"]),
        f"{values['image']['repository']}@{values['image']['digest']}",
        int(split["weight"]) if split.get("release") else None,
    )


def start_canary(stage_name: str, model_version: str, image: ImageReference | str, **connection) -> int:
    """Install or upgrade the candidate's release beside the one in service, with no share of the traffic yet (the
    Ingress is the release in service's); Helm waits for its pods and removes it if they fail. Its revision."""
    return upgrade(stage_name, model_version, image, release_name=CANARY_RELEASE, overrides=CANDIDATE_VALUES, **connection)


def set_canary_weight(stage_name: str, weight: int, **connection) -> int:
    """Send `weight` percent of the Ingress's requests to the candidate; the weight is checked before any change."""
    split = split_values(weight)
    in_service = _in_service(stage_name, connection)
    if released(stage_name, CANARY_RELEASE, **_reader(connection)) is None:
        raise HelmReleaseError(f"no canary release {CANARY_RELEASE} runs in {stage(stage_name).namespace}: start one first")
    return upgrade(stage_name, in_service.version, in_service.image, overrides=split, **connection)


def promote_canary(stage_name: str, **connection) -> str:
    """The release in service takes the candidate's version while the candidate answers everything, then the split
    and the candidate's release go; the version it replaced is returned."""
    in_service = _in_service(stage_name, connection)
    candidate = released(stage_name, CANARY_RELEASE, **_reader(connection))
    if candidate is None:
        raise HelmReleaseError(f"no canary release {CANARY_RELEASE} runs in {stage(stage_name).namespace}: start one first")
    upgrade(stage_name, candidate.version, candidate.image, overrides=split_values(100), **connection)
    upgrade(stage_name, candidate.version, candidate.image, overrides=NO_SPLIT, **connection)
    _uninstall(stage_name, CANARY_RELEASE, connection)
    return in_service.version


def retire_canary(stage_name: str, **connection) -> str | None:
    """All traffic back to the release in service, then the candidate's release removed; the candidate's version."""
    in_service = _in_service(stage_name, connection)
    candidate = released(stage_name, CANARY_RELEASE, **_reader(connection))
    upgrade(stage_name, in_service.version, in_service.image, overrides=NO_SPLIT, **connection)
    _uninstall(stage_name, CANARY_RELEASE, connection)
    return candidate.version if candidate else None


NO_SPLIT = {"canary": {"release": "", "weight": 0}}


def _reader(connection: dict) -> dict:
    """The connection options `released` takes, out of `upgrade`'s."""
    return {key: value for key, value in connection.items() if key in ("kubeconfig", "kube_context", "config")}


def _in_service(stage_name: str, connection: dict) -> Released:
    found = released(stage_name, **_reader(connection))
    if found is None:
        raise HelmReleaseError(
            f"no release {RELEASE_NAME} runs in {stage(stage_name).namespace}: a canary needs a version in service"
        )
    return found


def _uninstall(stage_name: str, release_name: str, connection: dict) -> None:
    target = stage(stage_name)
    reader = _reader(connection)
    with _connection(target, reader.get("kubeconfig"), reader.get("kube_context"), reader.get("config")) as cluster:
        try:
            cluster.uninstall(release_name, ignore_not_found=True, wait="watcher", timeout=connection.get("timeout_s"))
        except helm.HelmError as error:
            raise HelmReleaseError(
                f"the traffic went back to {RELEASE_NAME}, but removing {release_name} from {target.namespace} failed: "
                f"{error.detail}. Remove it with `helm -n {target.namespace} uninstall {release_name}`"
            ) from error


def _install_or_upgrade(
    cluster: helm.Config,
    chart: helm.Chart,
    target: Stage,
    values: dict,
    existing: bool,
    timeout_s: int,
    description: str,
    release_name: str = RELEASE_NAME,
) -> dict[str, Any]:
    """What `helm upgrade --install` does: upgrade the release when it exists, else install it."""
    common = {
        "namespace": target.namespace,
        "wait": "watcher",
        "timeout": timeout_s,
        "rollback_on_failure": True,
        "description": description,
    }
    if existing:
        return cluster.upgrade(chart, release_name, values, cleanup_on_fail=True, max_history=MAX_HISTORY, **common)
    return cluster.install(chart, release_name, values, **common)


def _has_release(cluster: helm.Config, target: Stage, release_name: str = RELEASE_NAME) -> bool:
    """Whether the release exists; like the helm CLI, an uninstalled one (kept history) counts as absent."""
    try:
        history = cluster.history(release_name, max_revisions=1)
    except helm.HelmNotFoundError:
        return False
    except helm.HelmError as error:
        raise HelmReleaseError(_explain_unread(target, error, release_name)) from error
    return bool(history) and history[-1].get("status") != "uninstalled"


def _where(target: Stage, release_name: str = RELEASE_NAME) -> str:
    return f"{release_name} in namespace {target.namespace} ({target.name})"


def _explain_unread(target: Stage, error: helm.HelmError, release_name: str = RELEASE_NAME) -> str:
    """Nothing was changed yet: the cluster could not be reached, or Helm's release records not read."""
    where = _where(target, release_name)
    if isinstance(error, helm.HelmKubeError):
        return (
            f"cannot reach the Kubernetes cluster to release {where}: {error.detail}. Point KUBECONFIG (or kubeconfig=) "
            "at the EKS cluster, e.g. `aws eks update-kubeconfig --name <cluster>`, and check the credentials"
        )
    return (
        f"cannot read the release history of {where}, nothing was changed: {error.detail}. Helm keeps it in "
        f"Secrets of namespace {target.namespace}: check that the namespace exists and that the kubeconfig's identity "
        "may read and write Secrets there"
    )


def _explain(target: Stage, error: helm.HelmError, existing: bool, timeout_s: int, release_name: str = RELEASE_NAME) -> str:
    """The install or upgrade failed: Helm has rolled back (or removed a first install) and says why."""
    where = _where(target, release_name)
    if "another operation" in error.detail:
        return (
            f"Helm refused to release {where}: {error.detail}. Another install, upgrade or rollback is in "
            f"progress or was interrupted: wait for it, or roll back with `helm -n {target.namespace} rollback {release_name}`"
        )
    if isinstance(error, helm.HelmKubeError):
        return _explain_unread(target, error, release_name)
    if isinstance(error, helm.HelmRenderError | helm.HelmValuesError):
        return f"the chart did not render for {where}, nothing was changed: {error.detail}"
    undone = (
        "Helm rolled it back to the revision that served before, which keeps serving"
        if existing
        else "Helm removed the failed first install"
    )
    return (
        f"helm upgrade --install of {where} failed and {undone}: {error.detail}. If the pods did not become "
        f"ready within {timeout_s} s, see `kubectl -n {target.namespace} describe pods -l "
        f"app.kubernetes.io/instance={release_name}` and their logs"
    )


def service_url(stage_name: str, release_name: str = RELEASE_NAME) -> str:
    """The release's Service inside the cluster (the front door, nginx on 8080)."""
    return f"http://{release_name}.{stage(stage_name).namespace}.svc.cluster.local:{SERVICE_PORT}"


def check_ping(url: str, *, timeout_s: float = 60.0, interval_s: float = 2.0) -> None:
    """Wait until GET url/ping answers 200 {"status": "Healthy"}; else HelmReleaseError with the last answer."""
    ping = url.rstrip("/") + "/ping"
    deadline = time.monotonic() + timeout_s
    while True:
        healthy, answer = _ping_once(ping)
        if healthy:
            return
        if time.monotonic() + interval_s > deadline:
            raise HelmReleaseError(
                f"{ping} did not answer Healthy within {timeout_s:.0f} s (last answer: {answer}): the release is up but "
                "its pods do not serve; check their readiness and logs, and roll back if they do not recover"
            )
        time.sleep(interval_s)


def _ping_once(ping: str) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(ping, timeout=5) as response:
            body = response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return False, f"HTTP {error.code} {error.read().decode(errors='replace')[:200]}"
    except OSError as error:
        return False, str(error)
    try:
        healthy = json.loads(body).get("status") == "Healthy"
    except (ValueError, AttributeError):
        healthy = False
    return healthy, f"HTTP 200 {body[:200]}"


def _load_chart(chart_dir: Path) -> helm.Chart:
    _check_chart(chart_dir)
    return helm.Chart.load(chart_dir)


def _check_chart(chart_dir: Path) -> None:
    if not (chart_dir / "Chart.yaml").is_file():
        raise HelmReleaseError(
            f"no Helm chart at {chart_dir}: the serving chart lives in {CHART_DIR} of the repository; whatever runs a "
            "release (the Dagster code location's image too) needs that folder"
        )


def _stage_values_file(target: Stage, chart_dir: Path) -> Path:
    _check_chart(chart_dir)
    path = chart_dir / target.values_file
    if not path.is_file():
        raise HelmReleaseError(f"the {target.name} stage has no values file at {path}")
    return path


def _merged(base: dict, override: dict) -> dict:
    """base with override laid over it, maps merged key by key (as Helm coalesces values)."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merged(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged
