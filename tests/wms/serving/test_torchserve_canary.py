"""A canary on the local TorchServe: a candidate version beside the one in service, a share of the requests sent to
it by the front door, then promoted or retired. Real TorchServe, real nginx, real requests."""

import json
import math
import threading
import urllib.error
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from tests.conftest import free_port, free_port_block
from tests.models import centre_window_onnx
from wms.serving.smoke import sample_photo
from wms.serving.torchserve import LocalTorchServe, TorchServeError, build_archive

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = "tiny"
REQUESTS = 300
FALSE_ALARM = 1e-6
"""The chance that a correct 20 % split falls outside the bound the test allows: the test fails wrongly once in a
million runs."""
RELOADS = 300
"""Before the front door's inner hop lost its keepalive, one request in about 7000 failed during 150 reloads."""


def binomial_bounds(n: int, p: float, alpha: float) -> tuple[int, int]:
    """The smallest and largest count of successes in n draws that are each at least alpha/2 likely in their tail."""
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    low, tail = 0, 0.0
    while tail + pmf[low] <= alpha / 2:
        tail += pmf[low]
        low += 1
    high, tail = n, 0.0
    while tail + pmf[high] <= alpha / 2:
        tail += pmf[high]
        high -= 1
    return low, high


def versions_answering(server: LocalTorchServe, count: int) -> Counter:
    photo = sample_photo()
    with ThreadPoolExecutor(4) as pool:
        return Counter(pool.map(lambda _: server.predict(MODEL, photo)["model_version"], range(count)))


@pytest.fixture
def two_versions(tmp_path):
    onnx_path = centre_window_onnx(tmp_path / "model.onnx")
    server = replace(LocalTorchServe.on_port(tmp_path / "home", free_port_block(8)), worker_port=free_port())
    server.deploy(build_archive(onnx_path, MODEL, "1", server.model_store), MODEL, "1")
    candidate = build_archive(onnx_path, MODEL, "2", server.model_store)
    yield server, candidate
    server.stop()


def test_the_bound_holds_the_expected_count_and_excludes_far_ones():
    low, high = binomial_bounds(REQUESTS, 0.2, FALSE_ALARM)
    assert low < 60 < high and (low, high) != (0, REQUESTS)
    assert high - low < 0.3 * REQUESTS


def test_a_canary_answers_its_share_then_all_once_promoted(two_versions):
    server, candidate = two_versions
    server.start_canary(candidate, MODEL, "2", 20)
    answered = versions_answering(server, REQUESTS)
    low, high = binomial_bounds(REQUESTS, 0.2, FALSE_ALARM)
    assert set(answered) == {"1", "2"} and low <= answered["2"] <= high, answered
    assert server.predict(MODEL, sample_photo())["model_version"] in {"1", "2"}
    server.set_canary_weight(MODEL, 100)
    assert versions_answering(server, 20) == Counter({"2": 20})
    assert server.promote_canary(MODEL) == "1"
    assert server.served_version(MODEL) == "2" and server.loaded_versions(MODEL) == ["2"]
    assert server.canary(MODEL) is None
    assert versions_answering(server, 20) == Counter({"2": 20})


def test_a_retired_canary_leaves_the_version_in_service_alone(two_versions):
    server, candidate = two_versions
    server.start_canary(candidate, MODEL, "2", 50)
    assert server.retire_canary(MODEL) == "2"
    assert server.loaded_versions(MODEL) == ["1"] and server.canary(MODEL) is None
    assert versions_answering(server, 20) == Counter({"1": 20})


def test_a_weight_outside_0_to_100_changes_nothing(two_versions):
    server, candidate = two_versions
    server.start_canary(candidate, MODEL, "2", 10)
    for weight in (-1, 101, 20.5, True, "50"):
        with pytest.raises(ValueError, match="a whole percent from 0 to 100"):
            server.set_canary_weight(MODEL, weight)
    assert server.canary(MODEL).weight == 10


def test_a_canary_needs_a_version_in_service_and_another_version(two_versions):
    server, candidate = two_versions
    with pytest.raises(TorchServeError, match="no canary of tiny runs"):
        server.set_canary_weight(MODEL, 50)
    with pytest.raises(TorchServeError, match="is the version in service"):
        server.start_canary(candidate, MODEL, "1", 10)
    assert versions_answering(server, 5) == Counter({"1": 5})


@pytest.mark.slow
def test_every_request_is_answered_while_the_split_changes_again_and_again(two_versions):
    """Each weight change reloads nginx; requests keep coming on every connection the old and new workers hold."""
    server, candidate = two_versions
    server.start_canary(candidate, MODEL, "2", 20)
    photo, done, answered = sample_photo(), threading.Event(), Counter()

    def keep_asking() -> None:
        while not done.is_set():
            try:
                answered[server.predict(MODEL, photo)["model_version"]] += 1
            except urllib.error.HTTPError as error:
                answered[f"{error.code} {json.load(error).get('cause')}"] += 1

    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(keep_asking)
        for change in range(RELOADS):
            server.set_canary_weight(MODEL, (20, 50, 80)[change % 3])
        done.set()
    server.retire_canary(MODEL)
    assert set(answered) == {"1", "2"}, answered
