"""The canary's figures read from a real Prometheus scraping a real TorchServe that serves two versions: one that
answers, one whose model fails on every photo."""

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import replace

import pytest

from tests.conftest import free_port, free_port_block, prometheus_scraping
from tests.models import centre_window_onnx, wrong_input_model
from wms.monitoring.canary import CanaryPolicy, judge, read_figures
from wms.monitoring.prometheus import LocalPrometheus
from wms.serving.smoke import sample_photo
from wms.serving.torchserve import LocalTorchServe, build_archive

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = "tiny"
REQUESTS = 40
WINDOW_S = 300


def post(server: LocalTorchServe, version: str, photo: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{server.inference_url}/predictions/{MODEL}/{version}",
        data=photo,
        method="POST",
        headers={"Content-Type": "application/octet-stream"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def scraped(prometheus: LocalPrometheus, version: str) -> bool:
    query = urllib.parse.urlencode({"query": f'wms_requests_total{{model="{MODEL}", model_version="{version}"}}'})
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/query?{query}", timeout=10) as response:
        return bool(json.load(response)["data"]["result"])


@pytest.fixture
def served_and_watched(tmp_path):
    server = replace(LocalTorchServe.on_port(tmp_path / "home", free_port_block(8)), worker_port=free_port())
    server.deploy(build_archive(centre_window_onnx(tmp_path / "good.onnx"), MODEL, "1", server.model_store), MODEL, "1")
    broken = build_archive(wrong_input_model(tmp_path / "broken.onnx"), MODEL, "2", server.model_store)
    server._management("POST", f"/models?url={broken.name}&initial_workers=1&synchronous=true")  # beside, no smoke test
    prometheus = prometheus_scraping(tmp_path / "prometheus", server)
    yield server, prometheus
    prometheus.stop()
    server.stop()


def test_a_version_whose_model_fails_is_judged_worse_from_prometheus_s_figures(served_and_watched):
    server, prometheus = served_and_watched
    photo = sample_photo()
    deadline = time.monotonic() + 60
    while not all(scraped(prometheus, version) for version in ("1", "2")):  # the series at zero, before any request
        assert time.monotonic() < deadline, "Prometheus never scraped the handler's metrics"
        time.sleep(1)
    answers = {version: [post(server, version, photo) for _ in range(REQUESTS)] for version in ("1", "2")}
    assert {status for status, _ in answers["1"]} == {200}
    assert {(status, answer["cause"], answer["model_version"]) for status, answer in answers["2"]} == {
        (500, "internal_error", "2")
    }
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # a few scrapes, so that increase() has two samples of the final counts
        good, failing = (read_figures(prometheus.url, MODEL, version, WINDOW_S) for version in ("1", "2"))
        if good.requests >= REQUESTS * 0.9 and failing.requests >= REQUESTS * 0.9:
            break
        time.sleep(2)
    assert good.server_errors == 0 and good.p95_s is not None
    assert failing.error_ratio > 0.9
    verdict = judge(failing, good, CanaryPolicy(min_requests=REQUESTS // 2))
    assert verdict.outcome == "fail" and "error ratio more than" in verdict.reason
    assert judge(good, good, CanaryPolicy(min_requests=REQUESTS // 2)).outcome == "pass"
