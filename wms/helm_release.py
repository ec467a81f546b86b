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

from wms.project import PROJECT_ROOT
from wms.stages import CHART_DIR, RELEASE_NAME, Stage, stage

DEFAULT_CHART = PROJECT_ROOT / CHART_DIR
DEFAULT_TIMEOUT_S = 600
"""Long enough for a new node, an image pull and the model's first worker; Helm rolls back when it runs out."""
MAX_HISTORY = 10
"""Revisions Helm keeps per release (one Secret each in the namespace); rollbacks reach back this far."""
SERVICE_PORT = 8080
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


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


def release_values(stage_name: str, model_version: str, image: ImageReference | str, chart_dir: Path = DEFAULT_CHART) -> dict:
    """The values of one release: the stage's values file (as `helm -f` reads it) under the model version and image."""
    target = stage(stage_name)
    try:
        pinned = image if isinstance(image, ImageReference) else ImageReference.parse(image)
    except ValueError as error:
        raise HelmReleaseError(f"the {target.name} release cannot be made: {error}") from error
    values = helm.values_from_yaml(_stage_values_file(target, chart_dir).read_text())
    release = {"model": {"version": str(model_version)}, "image": {"repository": pinned.repository, "digest": pinned.digest}}
    return _merged(values, release)


def render(stage_name: str, model_version: str, image: ImageReference | str, chart_dir: Path = DEFAULT_CHART) -> dict[str, str]:
    """The manifests of a stage's release as Helm renders them offline, {template path: YAML}, switched-off ones dropped."""
    values = release_values(stage_name, model_version, image, chart_dir)
    with _load_chart(chart_dir) as chart:
        return _render(chart, stage(stage_name), values)


def _render(chart: helm.Chart, target: Stage, values: dict) -> dict[str, str]:
    try:
        manifests = chart.render(values, name=RELEASE_NAME, namespace=target.namespace, is_install=True)
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
) -> int:
    """`helm upgrade --install --rollback-on-failure --wait --timeout` into the stage's namespace; the new revision.

    The kubeconfig comes from `kubeconfig`, else the usual places (KUBECONFIG, ~/.kube/config, the pod's service
    account). `config` is an already configured connection (it is not closed here).
    """
    target = stage(stage_name)
    values = release_values(stage_name, model_version, image, chart_dir)
    description = f"model version {model_version}, image {values['image']['repository']}@{values['image']['digest']}"
    connection = (
        contextlib.nullcontext(config)
        if config is not None
        else helm.Config(kubeconfig_path=kubeconfig, kube_context=kube_context, namespace=target.namespace)
    )
    with _load_chart(chart_dir) as chart, connection as cluster:
        _render(chart, target, values)  # a bad version or digest fails here, before the cluster is contacted
        existing = _has_release(cluster, target)
        try:
            release = _install_or_upgrade(cluster, chart, target, values, existing, timeout_s, description)
        except helm.HelmError as error:
            raise HelmReleaseError(_explain(target, error, existing, timeout_s)) from error
    return int(release["revision"])


def _install_or_upgrade(
    cluster: helm.Config, chart: helm.Chart, target: Stage, values: dict, existing: bool, timeout_s: int, description: str
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
        return cluster.upgrade(chart, RELEASE_NAME, values, cleanup_on_fail=True, max_history=MAX_HISTORY, **common)
    return cluster.install(chart, RELEASE_NAME, values, **common)


def _has_release(cluster: helm.Config, target: Stage) -> bool:
    """Whether the release exists; like the helm CLI, an uninstalled one (kept history) counts as absent."""
    try:
        history = cluster.history(RELEASE_NAME, max_revisions=1)
    except helm.HelmNotFoundError:
        return False
    except helm.HelmError as error:
        raise HelmReleaseError(_explain_unread(target, error)) from error
    return bool(history) and history[-1].get("status") != "uninstalled"


def _where(target: Stage) -> str:
    return f"{RELEASE_NAME} in namespace {target.namespace} ({target.name})"


def _explain_unread(target: Stage, error: helm.HelmError) -> str:
    """Nothing was changed yet: the cluster could not be reached, or Helm's release records not read."""
    if isinstance(error, helm.HelmKubeError):
        return (
            f"cannot reach the Kubernetes cluster to release {_where(target)}: {error.detail}. Point KUBECONFIG (or "
            "kubeconfig=) at the EKS cluster, e.g. `aws eks update-kubeconfig --name <cluster>`, and check the credentials"
        )
    return (
        f"cannot read the release history of {_where(target)}, nothing was changed: {error.detail}. Helm keeps it in "
        f"Secrets of namespace {target.namespace}: check that the namespace exists and that the kubeconfig's identity "
        "may read and write Secrets there"
    )


def _explain(target: Stage, error: helm.HelmError, existing: bool, timeout_s: int) -> str:
    """The install or upgrade failed: Helm has rolled back (or removed a first install) and says why."""
    if "another operation" in error.detail:
        return (
            f"Helm refused to release {_where(target)}: {error.detail}. Another install, upgrade or rollback is in "
            f"progress or was interrupted: wait for it, or roll back with `helm -n {target.namespace} rollback {RELEASE_NAME}`"
        )
    if isinstance(error, helm.HelmKubeError):
        return _explain_unread(target, error)
    if isinstance(error, helm.HelmRenderError | helm.HelmValuesError):
        return f"the chart did not render for {_where(target)}, nothing was changed: {error.detail}"
    undone = (
        "Helm rolled it back to the revision that served before, which keeps serving"
        if existing
        else "Helm removed the failed first install"
    )
    return (
        f"helm upgrade --install of {_where(target)} failed and {undone}: {error.detail}. If the pods did not become "
        f"ready within {timeout_s} s, see `kubectl -n {target.namespace} describe pods -l "
        f"app.kubernetes.io/instance={RELEASE_NAME}` and their logs"
    )


def service_url(stage_name: str) -> str:
    """The release's Service inside the cluster (the front door, nginx on 8080)."""
    return f"http://{RELEASE_NAME}.{stage(stage_name).namespace}.svc.cluster.local:{SERVICE_PORT}"


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
