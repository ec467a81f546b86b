"""The TorchServe handler without a server: a stand-in context and a temporary model folder."""

import base64
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from serving import handler
from wms.export import export_onnx
from wms.model import build_unet


class FakeContext:
    def __init__(self, model_dir):
        self.system_properties = {"model_dir": str(model_dir)}
        self.manifest = {"model": {"serializedFile": "model.onnx", "modelName": "wms-unet", "modelVersion": "3"}}
        self.statuses = {}

    def set_response_status(self, code, phrase, idx=0):
        self.statuses[idx] = (code, phrase)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model-dir")
    export_onnx(build_unet("mobilenet_v2"), 64, folder / "model.onnx", {})
    segmenter = handler.WindowSegmenter()
    segmenter.initialize(FakeContext(folder))
    return segmenter, folder


def test_a_photo_gets_a_mask_its_own_size_and_the_model_version(service, synthetic_root):
    segmenter, folder = service
    path = sorted((synthetic_root / "images").iterdir())[0]
    context = FakeContext(folder)
    [answer] = segmenter.handle([{"body": bytearray(path.read_bytes())}], context)
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["mask_png_base64"]))))
    assert (answer["height"], answer["width"]) == mask.shape
    assert answer["model"] == "wms-unet" and answer["model_version"] == "3"
    assert 0.0 <= answer["confidence"] <= 1.0
    assert context.statuses == {}


def test_a_bad_item_fails_alone(service, synthetic_root):
    segmenter, folder = service
    good = sorted((synthetic_root / "images").iterdir())[1].read_bytes()
    context = FakeContext(folder)
    answers = segmenter.handle([{"data": b"garbage"}, {"body": good}, {"body": b""}], context)
    assert "not a readable image" in answers[0]["error"]
    assert "mask_png_base64" in answers[1]
    assert "no body" in answers[2]["error"]
    assert set(context.statuses) == {0, 2}
    assert context.statuses[0][0] == 400


def test_module_entry_point_initializes_then_serves(service, synthetic_root, tmp_path):
    _, folder = service
    shutil.copytree(folder, tmp_path / "m")
    context = FakeContext(tmp_path / "m")
    assert handler.handle(None, context) is None
    [answer] = handler.handle([{"body": sorted((synthetic_root / "images").iterdir())[0].read_bytes()}], context)
    assert answer["model_version"] == "3"


def test_threads_follow_the_cpu_affinity():
    import os

    assert handler.cpu_quota() == len(os.sched_getaffinity(0))
