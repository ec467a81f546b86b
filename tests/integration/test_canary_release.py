"""The production release as a canary, through Dagster, against a real TorchServe, nginx front door and Prometheus.

One server serves version 1 while clients send photos that name no version, a quarter of them bright. Candidates are
staged and released in turn: one that fails on bright photos and one made slow are rolled back at the first step
(the `champion` alias back to version 1, the run failed with the figures), one that answers well is promoted through
every step; the version in service answers every request throughout. A Prometheus that does not answer stops the
release before anything changes.
"""

import io
import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from PIL import Image

from tests.conftest import free_port, free_port_block, prometheus_scraping
from tests.models import centre_window_onnx, fails_on_bright_photos, slow_model
from wms.monitoring.prometheus import LocalPrometheus
from wms.registry.model_registry import CHAMPION, ROLLBACK, SERVED
from wms.serving.front_door import Canary
from wms.serving.smoke import sample_photo
from wms.serving.torchserve import build_archive
from wms_assets.assets.release import prod_release, staging_release, staging_release_answers
from wms_assets.assets.serving import ServingArtifacts, ServingImage
from wms_assets.constants import SERVING_IMAGE
from wms_assets.resources import CanaryAnalysis, LocalModelServer, MlflowRegistry

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = "tiny"
PORT_FIELDS = ("inference", "management", "metrics", "handler_metrics", "grpc_inference", "grpc_management", "backend")
POLICY = {"steps": [20, 50, 100], "window_s": 8, "min_requests": 10, "interval_s": 1.0, "max_step_s": 90}
"""Short steps for a test: the clients send about 15 requests a second here, so 8 s at 20 % gives the candidate ~20."""


def bright_photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), "white").save(buffer, "JPEG")
    return buffer.getvalue()


class Clients:
    """Independent clients sending photos that name no version, each one after another (every fourth photo bright),
    as many people would: a slow version delays only the clients it answers. Keeps (status, version, cause)."""

    def __init__(self, url: str, count: int = 4) -> None:
        self.url = f"{url}/predictions/{MODEL}"
        self.photos = [sample_photo(), sample_photo(), sample_photo(), bright_photo()]
        self.answers: list[tuple[int, str, str]] = []
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._send, args=(first,), daemon=True) for first in range(count)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join()

    def _send(self, sent: int) -> None:
        while not self.done.is_set():
            photo = self.photos[sent % len(self.photos)]
            sent += 1
            request = urllib.request.Request(self.url, data=photo, headers={"Content-Type": "image/jpeg"})
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    answer, status = json.load(response), response.status
            except urllib.error.HTTPError as error:
                answer, status = json.load(error), error.code
            except OSError as error:
                answer, status = {"cause": f"no answer: {error}"}, 0
            self.answers.append((status, str(answer.get("model_version")), str(answer.get("cause", "ok"))))


@dataclass(frozen=True)
class Production:
    root: Path
    target: LocalModelServer
    prometheus: LocalPrometheus
    mlflow: MlflowRegistry
    clients: Clients


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    """Version 1 served and champion, Prometheus scraping every second, an MLflow registry holding version 1."""
    root = tmp_path_factory.mktemp("canary-release")
    numbered = LocalModelServer.on_port(root / "torchserve", free_port_block(8))
    ports = {f"{name}_port": getattr(numbered, f"{name}_port") for name in PORT_FIELDS}
    target = LocalModelServer(home=str(root / "torchserve"), worker_port=free_port(), **ports)
    server = target.server()
    server.deploy(build_archive(centre_window_onnx(root / "good.onnx"), MODEL, "1", server.model_store), MODEL, "1")
    prometheus = prometheus_scraping(root / "prometheus", server)
    mlflow = MlflowRegistry(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", model_name=MODEL)
    registry = mlflow.registry()
    registry.client.create_registered_model(MODEL)
    register(mlflow, root / "good.onnx")
    registry.promote("1")
    clients = Clients(server.inference_url)
    clients.start()
    yield Production(root, target, prometheus, mlflow, clients)
    clients.stop()
    prometheus.stop()
    server.stop()


def register(mlflow: MlflowRegistry, onnx: Path) -> str:
    """A new version of the model, as registered_model would leave it (its source: the ONNX file's folder)."""
    return str(mlflow.registry().client.create_model_version(MODEL, source=str(onnx.parent), run_id=None).version)


def newest_version(mlflow: MlflowRegistry) -> str:
    return str(max(int(version.version) for version in mlflow.registry().client.search_model_versions(f"name = '{MODEL}'")))


def release_candidate(production, onnx: Path, **policy) -> dg.ExecuteInProcessResult:
    """Register and promote the candidate as the gates would, then materialize staging and production releases."""
    mlflow = production.mlflow
    version = register(mlflow, onnx)
    mlflow.registry().promote(version)
    archive = build_archive(onnx, MODEL, version, production.root / "archives")

    @dg.asset(key=SERVING_IMAGE)
    def serving_image() -> ServingImage:
        return ServingImage("context", None, ServingArtifacts(MODEL, version, str(onnx), str(archive)))

    canary = CanaryAnalysis(**({"enabled": True, "prometheus_url": production.prometheus.url} | POLICY | policy))
    return dg.materialize(
        [serving_image, staging_release, staging_release_answers, prod_release],
        resources={"model_server": production.target, "canary": canary, "mlflow": mlflow},
        raise_on_error=False,
    )


def failure_of(result: dg.ExecuteInProcessResult) -> str:
    (failed,) = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    return failed.event_specific_data.error.to_string()


def assert_only_version_1_serves(production: Production) -> None:
    server = production.target.server()
    assert server.served_version(MODEL) == "1" and server.loaded_versions(MODEL) == ["1"]
    assert server.canary(MODEL) is None
    assert str(production.mlflow.registry().version_by_alias(CHAMPION).version) == "1"


def test_a_prometheus_that_does_not_answer_stops_the_release_before_anything_changes(production, tmp_path):
    result = release_candidate(
        production, centre_window_onnx(tmp_path / "model.onnx"), prometheus_url=f"http://127.0.0.1:{free_port()}"
    )
    assert not result.success
    assert "did not answer" in failure_of(result) and "wms monitor start" in failure_of(result)
    server = production.target.server()
    assert server.served_version(MODEL) == "1" and server.canary(MODEL) is None, "the version in service keeps every request"
    production.mlflow.registry().rollback("test: the candidate never served")


@pytest.mark.parametrize(
    ("make_model", "why"),
    [(fails_on_bright_photos, "error ratio more than 0.01"), (slow_model, "p95 above")],
    ids=["failing", "slow"],
)
def test_a_worse_candidate_is_rolled_back_at_the_first_step_and_the_run_fails_with_the_figures(
    production, tmp_path, make_model, why
):
    clients = production.clients
    answered_before = len(clients.answers)
    result = release_candidate(production, make_model(tmp_path / "model.onnx"))

    assert not result.success
    message = failure_of(result)
    assert "failed at 20 %" in message and why in message and "champion moved back to version 1" in message
    assert_only_version_1_serves(production)
    last = production.mlflow.registry().champion_history()[-1]
    assert (last.action, last.version) == (ROLLBACK, "1") and why in last.reason
    candidate = newest_version(production.mlflow)
    during = Counter(clients.answers[answered_before:])
    answered_by = {(200, "1", "ok"), (200, candidate, "ok"), (500, candidate, "internal_error")}
    assert set(during) <= answered_by, f"every request answered, by version 1 or the candidate: {during}"


def test_a_good_candidate_is_promoted_through_every_step_and_the_old_version_retired(production, tmp_path):
    target, mlflow, clients = production.target, production.mlflow, production.clients
    answered_before = len(clients.answers)
    result = release_candidate(production, centre_window_onnx(tmp_path / "model.onnx"))

    assert result.success, failure_of(result)
    candidate = str(mlflow.registry().version_by_alias(CHAMPION).version)
    server = target.server()
    assert server.served_version(MODEL) == candidate and server.loaded_versions(MODEL) == [candidate]
    assert server.canary(MODEL) is None
    metadata = result.asset_materializations_for_node("prod_release")[0].metadata
    assert [line.split("|")[1].strip() for line in metadata["canary"].value.splitlines()[2:]] == ["20 %", "50 %", "100 %"]
    last = mlflow.registry().champion_history()[-1]
    assert (last.action, last.version, last.previous) == (SERVED, candidate, "1")
    assert "canary passed at 20 % -> 50 % -> 100 %" in last.reason
    during = Counter(clients.answers[answered_before:])
    assert set(during) <= {(200, "1", "ok"), (200, candidate, "ok")}, during
    assert {version for _, version, _ in during} == {"1", candidate}, "both versions answered while the canary ran"


def test_a_canary_of_another_version_left_by_a_killed_run_is_retired_first(production, tmp_path):
    server = production.target.server()
    in_service = server.served_version(MODEL)
    onnx = centre_window_onnx(tmp_path / "left.onnx")
    left = build_archive(onnx, MODEL, "99", server.model_store)
    server.start_canary(left, MODEL, "99", 30)
    assert server.canary(MODEL) == Canary("99", 30)

    server.start_canary(build_archive(onnx, MODEL, "100", server.model_store), MODEL, "100", 0)

    assert server.canary(MODEL) == Canary("100", 0) and sorted(server.loaded_versions(MODEL)) == sorted([in_service, "100"])
    server.retire_canary(MODEL)
