"""The handler inside a real TorchServe: broken requests, unusual photos, a fuzz run, metrics and the token."""

import http.client
import ipaddress
import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import replace

import jsonschema
import numpy as np
import openapi_spec_validator
import pytest
from PIL import Image

from tests.conftest import free_port, free_port_block
from tests.photos import encode, mutations, png_header_only
from wms.core.project import PROJECT_ROOT as ROOT
from wms.serving.site import api_document
from wms.serving.torchserve import MAX_REQUEST_BYTES, LocalTorchServe, TorchServeError, build_archive

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "tiny"
TOKEN = "integration-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory, untrained_onnx):
    folder = tmp_path_factory.mktemp("service")
    onnx_path = untrained_onnx
    (folder / "key").write_text(TOKEN + "\n")
    served = replace(
        LocalTorchServe.on_port(folder / "home", free_port_block(8)), worker_port=free_port(), api_key_file=folder / "key"
    )
    archive = build_archive(onnx_path, MODEL, "1", served.model_store)
    served.start(archive)
    yield served
    served.stop()


def post(server: LocalTorchServe, body: bytes, content_type: str = "image/jpeg", token: str | None = TOKEN):
    """(status, parsed JSON or None) of one POST /predictions/<model>."""
    connection = http.client.HTTPConnection(server.host, server.inference_port, timeout=60)
    headers = {"Content-Type": content_type, **({"Authorization": f"Bearer {token}"} if token else {})}
    try:
        connection.request("POST", f"/predictions/{MODEL}", body=body, headers=headers)
        response = connection.getresponse()
    except ConnectionResetError:  # TorchServe may close the socket once it has answered an oversized body
        response = connection.getresponse()
    payload = response.read()
    connection.close()
    try:
        return response.status, json.loads(payload)
    except ValueError:
        return response.status, None


GOOD = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)), "JPEG")


def assert_still_serving(server):
    status, answer = post(server, GOOD)
    assert status == 200 and "mask_png_base64" in answer


def workers(server):
    return [(worker["pid"], worker["status"]) for worker in server.worker_states(MODEL)]


BROKEN = {
    "empty body": (b"", "image/jpeg", 400, "empty_body"),
    "not an image": (b"hello, this is text", "application/octet-stream", 400, "not_an_image"),
    "random bytes": (np.random.default_rng(1).bytes(20000), "application/octet-stream", 400, "not_an_image"),
    "truncated JPEG": (GOOD[: len(GOOD) // 2], "image/jpeg", 400, "undecodable"),
    "0x0 image": (png_header_only(0, 0), "image/png", 400, "not_an_image"),
    "1x1 image": (encode(Image.new("RGB", (1, 1)), "PNG"), "image/png", 400, "too_small"),
    "20000x20000 bomb": (encode(Image.new("L", (20000, 20000)), "PNG"), "image/png", 413, "too_many_pixels"),
    "text content type": (b"a photo, honestly", "text/plain", 415, "wrong_content_type"),
    "JSON content type": (b'{"photo": "x"}', "application/json", 415, "wrong_content_type"),
}
FRONT_DOOR = {
    "form content type": (b"photo=x", "application/x-www-form-urlencoded", 415, "wrong_content_type"),
    "photo labelled as a form": (GOOD, "application/x-www-form-urlencoded", 415, "wrong_content_type"),
    "body over the size limit": (b"\xff" * (MAX_REQUEST_BYTES + 1024), "image/jpeg", 413, "body_too_large"),
}
"""Refused by nginx before TorchServe's frontend, which would answer a form with a 500 and a large body bare."""


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_request_gets_a_4xx_json_error_and_the_worker_survives(server, case):
    body, content_type, status, cause = BROKEN[case]
    before = workers(server)
    got, answer = post(server, body, content_type)
    assert (got, answer["cause"]) == (status, cause)
    assert answer["error"] and answer["model"] == MODEL and answer["model_version"] == "1"
    assert_still_serving(server)
    assert workers(server) == before


def test_several_files_in_one_request_are_refused(server):
    boundary = "wms-boundary"
    parts = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode()
        + GOOD
        + b"\r\n"
        for name in ("first", "second")
    )
    status, answer = post(server, parts + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}")
    assert (status, answer["cause"]) == (400, "several_files")
    assert_still_serving(server)


@pytest.mark.parametrize("case", list(FRONT_DOOR))
def test_the_front_door_refuses_what_torchserve_would_answer_badly(server, case):
    body, content_type, status, cause = FRONT_DOOR[case]
    got, answer = post(server, body, content_type)
    assert (got, answer["cause"]) == (status, cause)
    assert "send" in answer["error"] and (answer["model"], answer["model_version"]) == (MODEL, "1")
    assert_still_serving(server)


def send(server: LocalTorchServe, method: str, path: str, body: bytes = b"", content_type: str | None = None):
    """(status, headers, body) of any request to the front door, with the token."""
    connection = http.client.HTTPConnection(server.host, server.inference_port, timeout=60)
    headers = {"Authorization": f"Bearer {TOKEN}", **({"Content-Type": content_type} if content_type else {})}
    connection.request(method, path, body=body or None, headers=headers)
    response = connection.getresponse()
    answer = response.status, {key.lower(): value for key, value in response.getheaders()}, response.read()
    connection.close()
    return answer


FORM = b"photo=a+secret+the+answer+must+not+echo"
BESIDE_THE_API = {
    "KServe v1 predict": ("POST", f"/v1/models/{MODEL}:predict", FORM, "application/x-www-form-urlencoded", 404, "not_found"),
    "KServe v2 infer": ("POST", f"/v2/models/{MODEL}/infer", FORM, "application/x-www-form-urlencoded", 404, "not_found"),
    "explanations": ("POST", f"/explanations/{MODEL}", FORM, "application/x-www-form-urlencoded", 404, "not_found"),
    "TorchServe's API description": ("OPTIONS", "/", b"", None, 405, "method_not_allowed"),
    "a form to the page": ("POST", "/", FORM, "application/x-www-form-urlencoded", 405, "method_not_allowed"),
    "GET a prediction": ("GET", f"/predictions/{MODEL}", b"", None, 405, "method_not_allowed"),
    "POST to ping": ("POST", "/ping", GOOD, "image/jpeg", 405, "method_not_allowed"),
    "a model not served": ("POST", "/predictions/nosuch", GOOD, "image/jpeg", 404, "no_such_model"),
    "a version not served": ("POST", f"/predictions/{MODEL}/99", GOOD, "image/jpeg", 404, "no_such_version"),
}


@pytest.mark.parametrize("case", list(BESIDE_THE_API))
def test_only_the_api_passes_the_front_door_and_the_rest_is_answered_in_its_json_shape(server, case):
    method, path, body, content_type, status, cause = BESIDE_THE_API[case]
    got, headers, payload = send(server, method, path, body, content_type)
    answer = json.loads(payload)
    assert (got, answer["cause"], headers["content-type"]) == (status, cause, "application/json")
    assert "send" in answer["error"] and (answer["model"], answer["model_version"]) == (MODEL, "1")
    assert b"secret" not in payload, "no answer echoes the body"
    if status == 405:
        assert headers["allow"] in ("POST", "GET, HEAD")
    assert_still_serving(server)


def test_every_answer_of_the_api_says_it_is_json(server):
    for method, path, body in (
        ("POST", f"/predictions/{MODEL}", GOOD),
        ("POST", f"/predictions/{MODEL}/1", GOOD),
        ("GET", "/ping", b""),
    ):
        status, headers, payload = send(server, method, path, body, "image/jpeg" if body else None)
        assert (status, headers["content-type"]) == (200, "application/json") and json.loads(payload)
    status, headers, _ = send(server, "POST", f"/predictions/{MODEL}", b"not a photo", "image/jpeg")
    assert (status, headers["content-type"]) == (400, "application/json")


def test_every_port_of_the_local_server_listens_on_loopback_only(server):
    import psutil

    listening = {
        (connection.laddr.ip, connection.laddr.port)
        for process in server.processes()
        for connection in process.net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN
    }
    assert {server.inference_port, server.management_port, server.metrics_port, server.handler_metrics_port} <= {
        port for _, port in listening
    }
    addresses = {ipaddress.ip_address(ip) for ip, _ in listening}
    assert all((getattr(address, "ipv4_mapped", None) or address).is_loopback for address in addresses), listening


def test_the_management_api_answers_only_with_the_key_only_its_owner_can_read(server):
    request = urllib.request.Request(f"{server.management_url}/models")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert (refused.value.code, json.load(refused.value)["type"]) == (400, "InvalidKeyException")  # TorchServe's answer
    assert server.home.stat().st_mode & 0o077 == 0, "the server's home (and its key file) is its owner's alone"
    assert [entry["modelName"] for entry in server.models()] == [MODEL]


def test_archives_load_only_from_the_local_model_store(server):
    with pytest.raises(TorchServeError, match="allowed"):
        server._management("POST", "/models?url=http://127.0.0.1:9/elsewhere.mar")
    assert_still_serving(server)


def test_without_the_token_nothing_is_served(server):
    for token in (None, "wrong"):
        status, answer = post(server, GOOD, token=token)
        assert (status, answer["cause"]) == (401, "unauthorized")


UNUSUAL = {
    "PNG with alpha": (Image.new("RGBA", (200, 150), (10, 20, 30, 128)), "PNG"),
    "grayscale": (Image.new("L", (200, 150), 90), "JPEG"),
    "CMYK JPEG": (Image.new("CMYK", (200, 150), (0, 80, 160, 20)), "JPEG"),
    "16-bit PNG": (Image.fromarray(np.full((150, 200), 40000, dtype=np.uint16)), "PNG"),
    "palette": (Image.new("RGB", (200, 150), (200, 10, 10)).convert("P"), "PNG"),
    "WebP": (Image.new("RGB", (200, 150), (90, 90, 90)), "WEBP"),
    "BMP": (Image.new("RGB", (200, 150), (1, 2, 3)), "BMP"),
}


@pytest.mark.parametrize("case", list(UNUSUAL))
def test_unusual_but_valid_photos_are_served(server, case):
    image, fmt = UNUSUAL[case]
    status, answer = post(server, encode(image, fmt), f"image/{fmt.lower()}")
    assert status == 200
    assert (answer["width"], answer["height"]) == (200, 150)


def resident_megabytes(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))


@pytest.mark.slow
def test_fuzzed_photos_never_get_a_5xx_nor_restart_the_worker_nor_grow_its_memory(server):
    for _ in range(20):  # warm up: allocator pools and caches reach their working size
        assert_still_serving(server)
    [(pid, _)] = workers(server)
    memory_before = resident_megabytes(pid)
    deadline = time.monotonic() + 240
    statuses = []
    for body in mutations(seed=11, count=300):
        status, answer = post(server, body, "application/octet-stream")
        assert status < 500, (status, answer)
        statuses.append(status)
        assert time.monotonic() < deadline, "the fuzz run is bounded in time"
    assert_still_serving(server)
    assert workers(server) == [(pid, "READY")]
    grown = resident_megabytes(pid) - memory_before
    assert grown < 50, f"the worker grew by {grown:.0f} MB over {len(statuses)} requests"
    assert {200, 400} <= set(statuses)  # the mutations reach both sides of the decoder


def scrape(url: str) -> dict[str, float]:
    """{'name{labels}': value} of a Prometheus text page."""
    with urllib.request.urlopen(url) as response:
        lines = response.read().decode().splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if line and not line.startswith("#")}


def family_total(samples: dict[str, float], name: str) -> float:
    return sum(value for key, value in samples.items() if key.split("{")[0] == name)


def test_metrics_exist_and_move(server):
    before = scrape(server.handler_metrics_url)
    post(server, GOOD)
    post(server, b"nonsense", "application/octet-stream")
    after = scrape(server.handler_metrics_url)
    for family in (
        "wms_request_seconds_count",
        "wms_model_seconds_count",
        "wms_input_megapixels_count",
        "wms_input_brightness_count",
        "wms_window_fraction_count",
        "wms_confidence_count",
    ):
        assert family_total(after, family) > family_total(before, family), family
    assert family_total(after, "wms_step_seconds_count") >= family_total(before, "wms_step_seconds_count") + 3
    assert family_total(after, "wms_batch_size_count") > family_total(before, "wms_batch_size_count")
    errors = [key for key in after if key.startswith("wms_requests_total") and 'outcome="not_an_image"' in key]
    assert errors and after[errors[0]] > before.get(errors[0], 0)
    frontend = scrape(server.metrics_url)
    assert family_total(frontend, "ts_inference_requests_total") > 0


def test_concurrent_requests_are_batched_and_a_bad_one_fails_alone(server):
    from concurrent.futures import ThreadPoolExecutor

    before = scrape(server.handler_metrics_url)
    bodies = [GOOD if index % 4 else b"not a photo" for index in range(24)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda body: post(server, body, "application/octet-stream"), bodies))
    for body, (status, answer) in zip(bodies, answers, strict=True):
        assert (status, "mask_png_base64" in answer) == ((200, True) if body is GOOD else (400, False))
    after = scrape(server.handler_metrics_url)
    batches = family_total(after, "wms_batch_size_count") - family_total(before, "wms_batch_size_count")
    requests = family_total(after, "wms_batch_size_sum") - family_total(before, "wms_batch_size_sum")
    assert requests == 24 and batches < 24  # some calls of the handler took several requests at once


def test_two_workers_share_one_metrics_page(tmp_path, untrained_onnx):
    from concurrent.futures import ThreadPoolExecutor

    onnx_path = untrained_onnx
    served = replace(LocalTorchServe.on_port(tmp_path / "home", free_port_block(8)), workers=2, worker_port=free_port())
    served.start(build_archive(onnx_path, MODEL, "1", served.model_store))
    try:
        assert len(workers(served)) == 2
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(lambda _: post(served, GOOD, token=None), range(12)))
        assert all(status == 200 for status, _ in answers)
        samples = scrape(served.handler_metrics_url)
        assert family_total(samples, "wms_requests_total") == 12  # both workers' samples, merged
        writers = {path.stem.rsplit("_", 1)[-1] for path in (served.home / "handler-metrics").glob("counter_*.db")}
        assert len(writers) == 2, writers
    finally:
        served.stop()


API = api_document()


def documented(method: str, path: str, status: int) -> dict | None:
    """The response the OpenAPI document gives for this request and status; None when the path is none of the API's."""
    for template, operations in API["paths"].items():
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path) and method.lower() in operations:
            response = operations[method.lower()]["responses"].get(str(status))
            assert response is not None, f"{method} {path} answered {status}, which serving/openapi.yaml does not list"
            return API["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]] if "$ref" in response else response
    return None


def matches(answer, schema: dict) -> None:
    jsonschema.Draft202012Validator({**schema, "components": API["components"]}).validate(answer)


def test_the_openapi_document_is_valid_and_names_every_cause_the_service_gives():
    openapi_spec_validator.validate(API)
    sources = [
        ROOT / "wms" / "inference" / "uploads.py",
        ROOT / "serving" / "handler.py",
        ROOT / "serving" / "nginx.conf.template",
    ]
    given = {cause for path in sources for cause in re.findall(r'PhotoRejected\(\s*"(\w+)"|"cause": "(\w+)"', path.read_text())}
    given = {name for pair in given for name in pair if name}
    assert given == set(API["components"]["schemas"]["Error"]["properties"]["cause"]["enum"])


def test_every_answer_is_the_one_the_openapi_document_describes(server):
    requests = [
        ("POST", f"/predictions/{MODEL}", GOOD, "image/jpeg"),
        ("POST", f"/predictions/{MODEL}/1", GOOD, "image/jpeg"),
        ("GET", "/ping", b"", None),
        *(("POST", f"/predictions/{MODEL}", body, kind) for body, kind, _, _ in [*BROKEN.values(), *FRONT_DOOR.values()]),
        *((method, path, body, kind) for method, path, body, kind, _, _ in BESIDE_THE_API.values()),
    ]
    for method, path, body, content_type in requests:
        status, _, payload = send(server, method, path, body, content_type)
        answer, response = json.loads(payload), documented(method, path, status)
        schema = response["content"]["application/json"]["schema"] if response else {"$ref": "#/components/schemas/Error"}
        matches(answer, schema)
        if status >= 400 and response:
            assert answer["cause"] in response["x-causes"], f"{method} {path}: {status} {answer['cause']}"
    status, answer = post(server, GOOD, token=None)
    assert answer["cause"] in documented("POST", f"/predictions/{MODEL}", status)["x-causes"]


def test_the_front_door_serves_the_page_the_document_and_its_reference(server):
    status, headers, page = send(server, "GET", "/")
    assert (status, headers["content-type"]) == (200, "text/html")
    assert f'<meta name="wms-model" content="{MODEL}">'.encode() in page
    assert "default-src 'self'" in headers["content-security-policy"]
    status, headers, document = send(server, "GET", "/openapi.json")
    assert (status, headers["content-type"], json.loads(document)) == (200, "application/json", API)
    status, headers, reference = send(server, "GET", "/docs")
    assert (status, headers["content-type"]) == (200, "text/html") and b"Prediction fields" in reference
    status, headers, _ = send(server, "GET", "/openapi.yaml")
    assert (status, headers["content-type"]) == (200, "application/yaml")
