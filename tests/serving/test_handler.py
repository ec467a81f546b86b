"""The TorchServe handler without a server: a stand-in context and a temporary model folder."""

import base64
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from serving import handler
from tests.models import wrong_input_model

RAW = {"content-type": "image/jpeg"}


class FakeContext:
    """What the handler uses of TorchServe's Context: properties, manifest, request headers, response statuses and types."""

    def __init__(self, model_dir, headers=None):
        self.system_properties = {"model_dir": str(model_dir)}
        self.manifest = {"model": {"serializedFile": "model.onnx", "modelName": "wms-unet", "modelVersion": "3"}}
        self.headers = headers or []
        self.statuses = {}
        self.content_types = {}
        self.response_headers = {}

    def get_all_request_header(self, idx):
        return self.headers[idx] if idx < len(self.headers) else dict(RAW)

    def set_response_status(self, code, phrase, idx=0):
        self.statuses[idx] = (code, phrase)

    def set_response_content_type(self, idx, value):
        self.content_types[idx] = value

    def set_response_header(self, idx, key, value):
        self.response_headers.setdefault(idx, {})[key] = value


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, untrained_onnx):
    folder = tmp_path_factory.mktemp("model-dir")
    shutil.copyfile(untrained_onnx, folder / "model.onnx")
    return folder


@pytest.fixture(scope="module")
def service(model_dir):
    segmenter = handler.WindowSegmenter()
    segmenter.initialize(FakeContext(model_dir), handler.HandlerSettings())
    return segmenter


@pytest.fixture(scope="module")
def photo(synthetic_root):
    return sorted((synthetic_root / "images").iterdir())[0].read_bytes()


def test_a_photo_gets_a_mask_its_own_size_polygon_and_the_model_version(service, model_dir, photo):
    context = FakeContext(model_dir)
    [answer] = service.handle([{"body": bytearray(photo)}], context)
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["mask_png_base64"]))))
    assert (answer["height"], answer["width"]) == mask.shape == Image.open(io.BytesIO(photo)).size[::-1]
    assert answer["model"] == "wms-unet" and answer["model_version"] == "3"
    assert 0.0 <= answer["confidence"] <= 1.0
    assert isinstance(answer["polygon"], list) and (answer["bbox"] is None) == (answer["polygon"] == [])
    assert context.statuses == {}


def test_a_bad_item_fails_alone(service, model_dir, photo):
    context = FakeContext(model_dir)
    answers = service.handle([{"data": b"garbage"}, {"body": photo}, {"body": b""}], context)
    assert answers[0]["cause"] == "not_an_image" and "JPEG, PNG, WebP or BMP" in answers[0]["error"]
    assert "mask_png_base64" in answers[1]
    assert answers[2]["cause"] == "empty_body"
    assert {index: status for index, (status, _) in context.statuses.items()} == {0: 400, 2: 400}
    assert context.content_types == dict.fromkeys(range(3), "application/json"), "every answer says it is JSON"


def test_a_model_that_fails_answers_each_photo_500_in_json_and_counts_it_for_its_version(model_dir, photo, tmp_path):
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    wrong_input_model(broken_dir / "model.onnx")  # loads, then fails on every photo
    broken = handler.WindowSegmenter()
    broken.initialize(FakeContext(broken_dir), handler.HandlerSettings())
    context = FakeContext(broken_dir)
    answers = broken.handle([{"body": photo}, {"body": b""}], context)
    assert [answer["cause"] for answer in answers] == ["internal_error", "empty_body"]
    assert answers[0]["model_version"] == "3" and "the server's fault" in answers[0]["error"]
    assert {index: status for index, (status, _) in context.statuses.items()} == {0: 500, 1: 400}
    assert context.response_headers == {0: {"X-WMS-Cause": "internal_error", "X-WMS-Model-Version": "3"}}
    counted = broken.metrics.registry.get_sample_value(
        "wms_requests_total", {"model": "wms-unet", "model_version": "3", "outcome": "internal_error"}
    )
    assert counted == 1.0


@pytest.mark.parametrize(
    ("request_", "headers", "cause", "status"),
    [
        ({"a": b"1", "b": b"2"}, {"content-type": "multipart/form-data; boundary=x"}, "several_files", 400),
        ({"body": "some text"}, {"content-type": "text/plain"}, "wrong_content_type", 415),
        ({"body": {"photo": 1}}, {"content-type": "application/json"}, "wrong_content_type", 415),
        ({"a": "b", "c": "d"}, {"content-type": "application/x-www-form-urlencoded"}, "wrong_content_type", 415),
        ({"body": b"\xff\xd8"}, {"content-type": "application/pdf"}, "wrong_content_type", 415),
    ],
    ids=["two-files", "text", "json", "form", "pdf"],
)
def test_requests_that_do_not_carry_one_photo_are_refused(service, model_dir, request_, headers, cause, status):
    context = FakeContext(model_dir, [headers])
    [answer] = service.handle([request_], context)
    assert answer["cause"] == cause
    assert context.statuses[0][0] == status


def test_a_multipart_file_is_read_like_a_raw_body(service, model_dir, photo):
    headers = {"content-type": "multipart/form-data; boundary=x", "data": {"content-type": "application/octet-stream"}}
    context = FakeContext(model_dir, [headers])
    [answer] = service.handle([{"data": bytearray(photo)}], context)
    assert "mask_png_base64" in answer and context.statuses == {}


def test_with_a_key_only_the_right_bearer_token_passes(model_dir, photo, tmp_path):
    (tmp_path / "key").write_text("s3cret\n")
    guarded = handler.WindowSegmenter()
    settings = handler.HandlerSettings.from_environment({"WMS_API_KEY_FILE": str(tmp_path / "key")})
    guarded.initialize(FakeContext(model_dir), settings)
    right, wrong = {**RAW, "authorization": "Bearer s3cret"}, {**RAW, "Authorization": "Bearer guess"}
    context = FakeContext(model_dir, [right, wrong, dict(RAW)])
    answers = guarded.handle([{"body": photo}] * 3, context)
    assert "mask_png_base64" in answers[0]
    assert [answers[1]["cause"], answers[2]["cause"]] == ["unauthorized", "unauthorized"]
    assert {context.statuses[1][0], context.statuses[2][0]} == {401}


def test_the_clients_token_is_read_where_the_front_door_puts_it_beside_torchserves_key(model_dir, photo, tmp_path):
    (tmp_path / "key").write_text("s3cret\n")
    guarded = handler.WindowSegmenter()
    guarded.initialize(
        FakeContext(model_dir), handler.HandlerSettings.from_environment({"WMS_API_KEY_FILE": str(tmp_path / "key")})
    )
    torchserve_key = {"authorization": "Bearer torchserve-inference-key"}
    passed_on = {**RAW, **torchserve_key, "x-wms-authorization": "Bearer s3cret"}
    context = FakeContext(model_dir, [passed_on, {**RAW, **torchserve_key}])
    answers = guarded.handle([{"body": photo}] * 2, context)
    assert "mask_png_base64" in answers[0] and answers[1]["cause"] == "unauthorized"


def test_the_handlers_metrics_listen_on_loopback_unless_told_otherwise():
    assert handler.HandlerSettings.from_environment({}).metrics_address == "127.0.0.1"
    told = handler.HandlerSettings.from_environment({"WMS_HANDLER_METRICS_ADDRESS": "0.0.0.0"})
    assert told.metrics_address == "0.0.0.0"


def test_a_key_file_that_is_missing_or_empty_stops_the_worker(tmp_path):
    with pytest.raises(FileNotFoundError):
        handler.HandlerSettings.from_environment({"WMS_API_KEY_FILE": str(tmp_path / "absent")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        handler.HandlerSettings.from_environment({"WMS_API_KEY_FILE": str(tmp_path / "empty")})


def test_metrics_count_outcomes_and_time_the_stages(model_dir, photo):
    service = handler.WindowSegmenter()
    service.initialize(FakeContext(model_dir), handler.HandlerSettings())
    service.handle([{"body": photo}, {"body": b"x"}], FakeContext(model_dir))
    sample = service.metrics.registry.get_sample_value
    labels = {"model": "wms-unet", "model_version": "3"}
    assert sample("wms_requests_total", {**labels, "outcome": "ok"}) == 1
    assert sample("wms_requests_total", {**labels, "outcome": "not_an_image"}) == 1
    assert sample("wms_batch_size_sum", labels) == 2
    for step in ("preprocess", "inference", "postprocess"):
        assert sample("wms_step_seconds_count", {**labels, "step": step}) == 1
    assert sample("wms_request_seconds_count", labels) == 2
    assert sample("wms_model_seconds_count", labels) >= 1  # the whole photo; the zoom when a window was found
    assert sample("wms_input_brightness_count", labels) == 1
    assert sample("wms_window_fraction_count", labels) == 1


def test_module_entry_point_initializes_then_serves(model_dir, photo, tmp_path):
    shutil.copytree(model_dir, tmp_path / "m")
    context = FakeContext(tmp_path / "m")
    assert handler.handle(None, context) is None
    [answer] = handler.handle([{"body": photo}], context)
    assert answer["model_version"] == "3"


def test_threads_share_the_cpu_quota_between_workers(monkeypatch, tmp_path):
    import os

    assert handler.cpu_quota() <= len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert handler._cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert handler._cgroup_cpu_limit(tmp_path) is None
    monkeypatch.setattr(handler, "cpu_quota", lambda: 8)
    assert handler.HandlerSettings(workers_per_model=3).intra_op_threads == 2
    assert handler.HandlerSettings(workers_per_model=16).intra_op_threads == 1


def test_a_large_photo_turned_by_exif_is_answered_at_its_displayed_size(service, model_dir):
    from tests.photos import encode

    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned by 90 degrees
    body = encode(Image.new("RGB", (4000, 3000), (90, 90, 90)), "JPEG", exif=exif.tobytes())
    [answer] = service.handle([{"body": body}], FakeContext(model_dir))
    mask = Image.open(io.BytesIO(base64.b64decode(answer["mask_png_base64"])))
    assert (answer["width"], answer["height"]) == mask.size == (3000, 4000)
