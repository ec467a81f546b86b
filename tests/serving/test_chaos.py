"""Failures done for real against a local TorchServe: its worker killed while clients send photos."""

import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import free_port, free_port_block
from tests.serving.test_service import GOOD, MODEL, send
from wms.serving.torchserve import LocalTorchServe, build_archive

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 4


@pytest.fixture
def server(tmp_path, untrained_onnx):
    served = replace(LocalTorchServe.on_port(tmp_path / "home", free_port_block(8)), worker_port=free_port())
    served.start(build_archive(untrained_onnx, MODEL, "1", served.model_store))
    yield served
    served.stop()


def test_a_killed_worker_fails_only_the_requests_in_flight_with_a_json_503_and_comes_back(server):
    [(pid, _)] = [(worker["pid"], worker["status"]) for worker in server.worker_states(MODEL)]
    answers, stop = [], threading.Event()  # (sent at, answered at, status, content type, body)

    def client() -> None:
        while not stop.is_set():
            started = time.monotonic()
            status, headers, payload = send(server, "POST", f"/predictions/{MODEL}", GOOD, "image/jpeg")
            answers.append((started, time.monotonic(), status, headers.get("content-type"), payload))

    with ThreadPoolExecutor(CLIENTS) as pool:
        for _ in range(CLIENTS):
            pool.submit(client)
        time.sleep(2)
        killed_at = time.monotonic()
        os.kill(int(pid), signal.SIGKILL)
        deadline = killed_at + 120
        while not any(sent > killed_at and status == 200 for sent, _, status, _, _ in answers) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)
        stop.set()
    statuses = {status for _, _, status, _, _ in answers}
    assert statuses <= {200, 503}, statuses
    failed = [payload for _, _, status, _, payload in answers if status == 503]
    assert all(b'"cause": "unavailable"' in payload for payload in failed), failed[:1]
    assert all(kind == "application/json" for _, _, _, kind, _ in answers)
    back = min(answered for sent, answered, status, _, _ in answers if sent > killed_at and status == 200)
    print(f"worker killed: {len(failed)} requests failed with 503; photos answered again {back - killed_at:.1f} s after")
    [(new_pid, state)] = [(worker["pid"], worker["status"]) for worker in server.worker_states(MODEL)]
    assert new_pid != pid and state == "READY"


def test_eight_clients_with_half_their_requests_broken_get_no_5xx(server):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from mixed_load import broken_requests, good_photos, run_load

    good = good_photos()
    load = run_load(server.host, server.inference_port, 8, 15, good, broken_requests(good[0]), MODEL)
    assert load["server_errors"] == 0, load["statuses"]
    assert load["statuses"].get("200", 0) > 0 and set(load["statuses"]) <= {"200", "400", "413", "415"}, load["statuses"]
