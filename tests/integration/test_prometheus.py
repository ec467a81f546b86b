"""A real Prometheus (Debian's) scrapes a real TorchServe serving the model; the recording rules and the drift
reader get their values through Prometheus' HTTP API."""

import http.client
import json
import time
import urllib.parse
import urllib.request
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from tests.conftest import free_port, free_port_block, prometheus_scraping
from tests.photos import encode
from wms.monitoring.drift import STATISTICS, compare, served_histograms
from wms.monitoring.prometheus import LocalPrometheus
from wms.serving.torchserve import LocalTorchServe, build_archive

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = "tiny"
SELECTOR = f'stage="local",model="{MODEL}",model_version="1"'


@pytest.fixture(scope="module")
def watched(tmp_path_factory, untrained_onnx):
    """TorchServe serving a small model, Prometheus scraping it every second, and 30 answered photos, 5 refused."""
    folder = tmp_path_factory.mktemp("watched")
    server = replace(LocalTorchServe.on_port(folder / "home", free_port_block(8)), worker_port=free_port())
    server.start(build_archive(untrained_onnx, MODEL, "1", server.model_store))
    prometheus = prometheus_scraping(folder / "prometheus", server)
    try:
        rng = np.random.default_rng(0)
        post(server, photo_of(rng))
        wait_for_target(prometheus)  # a counter's first scraped value is its start: later requests make the rate
        for index in range(35):
            post(server, photo_of(rng) if index % 7 else b"not a photo at all")
            time.sleep(0.1)
        yield server, prometheus
    finally:
        prometheus.stop()
        server.stop()


def photo_of(rng: np.random.Generator) -> bytes:
    return encode(Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)), "JPEG")


def wait_for_target(prometheus: LocalPrometheus, timeout_s: float = 60.0) -> None:
    """Until Prometheus has scraped the handler's first request (its counters exist from then on)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if query(prometheus, f"wms_requests_total{{{SELECTOR}}}"):
            time.sleep(2)  # one more scrape with the same value
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus never scraped the handler's metrics: {query(prometheus, 'up')}")


def post(server: LocalTorchServe, body: bytes) -> int:
    connection = http.client.HTTPConnection(server.host, server.inference_port, timeout=60)
    try:
        connection.request("POST", f"/predictions/{MODEL}", body=body, headers={"Content-Type": "image/jpeg"})
        return connection.getresponse().status
    finally:
        connection.close()


def query(prometheus: LocalPrometheus, expression: str) -> list[dict]:
    url = f"{prometheus.url}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["data"]["result"]


def value_of(prometheus: LocalPrometheus, expression: str, timeout_s: float = 90.0) -> float:
    """The expression's single value, once the scrapes and rule evaluations have produced one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = query(prometheus, expression)
        if result and result[0]["value"][1] not in ("NaN",):
            return float(result[0]["value"][1])
        time.sleep(1)
    raise AssertionError(f"{expression} returned nothing in {timeout_s:.0f} s: {query(prometheus, expression)}")


def test_the_recording_rules_return_rate_latency_and_error_ratio_for_the_served_version(watched):
    _, prometheus = watched

    assert value_of(prometheus, f"wms:requests:rate5m{{{SELECTOR}}}") > 0
    p95 = value_of(prometheus, f"wms:request_latency_seconds:p95_5m{{{SELECTOR}}}")
    p50 = value_of(prometheus, f"wms:request_latency_seconds:p50_5m{{{SELECTOR}}}")
    assert 0 < p50 <= p95 < 10
    assert value_of(prometheus, f"wms:request_errors:ratio_rate5m{{{SELECTOR}}}") == 0, "refused photos are the client's"


def test_the_drift_reader_counts_the_served_photos_through_prometheus(watched):
    _, prometheus = watched
    value_of(prometheus, f"sum(wms_input_brightness_count{{{SELECTOR}}})")

    served = served_histograms(prometheus.url, SELECTOR, window="10m")
    report = compare(served, served, min_photos=10)

    assert served["brightness"].total >= 20 and set(served) == set(STATISTICS)
    assert report.enough_traffic and report.drifted == []


def test_the_drift_asset_compares_what_prometheus_saw_with_the_training_photos(watched, synthetic_root):
    """The served photos here are noise at 320x240, the synthetic training photos meters at another size: drift."""
    import dagster as dg

    from wms_assets.assets.data import VersionedDataset
    from wms_assets.assets.monitoring import input_drift, input_drift_within_limits
    from wms_assets.resources import DriftPolicy

    _, prometheus = watched
    value_of(prometheus, f"sum(wms_input_brightness_count{{{SELECTOR}}})")
    names = sorted(path.name for path in (synthetic_root / "images").iterdir())
    dataset = VersionedDataset(str(synthetic_root), "synthetic", {"train": names}, {}, {})
    policy = DriftPolicy(prometheus_url=prometheus.url, model_name=MODEL, window="10m", min_photos=10)

    output = input_drift(dg.build_asset_context(), dataset=dataset, drift_policy=policy)
    check = input_drift_within_limits(output.value)

    assert output.value.report.served_photos >= 20
    assert "megapixels" in output.value.report.drifted
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
