import json
import socket
import time
import zipfile
from dataclasses import replace

import pytest

from tests.conftest import free_port
from wms.export import export_onnx
from wms.model import build_unet
from wms.torchserve import LocalTorchServe, TorchServeError, build_archive

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    folder = tmp_path_factory.mktemp("archive")
    onnx_path = export_onnx(build_unet("mobilenet_v2"), 64, folder / "model.onnx", {})
    return build_archive(onnx_path, "tiny", "4", folder / "store")


def test_the_archive_holds_the_model_and_the_handler(archive):
    assert archive.name == "tiny-v4.mar"
    with zipfile.ZipFile(archive) as packed:
        manifest = json.loads(packed.read("MAR-INF/MANIFEST.json"))
        assert {"model.onnx", "handler.py"} <= set(packed.namelist())
    assert manifest["model"]["modelVersion"] == "4"
    assert manifest["model"]["handler"] == "handler.py"


def test_a_server_that_cannot_start_fails_fast_with_the_reason(archive, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = LocalTorchServe(
            home=tmp_path,
            inference_port=free_port(),
            management_port=free_port(),
            metrics_port=free_port(),
            worker_port=free_port(),
            grpc_inference_port=taken.getsockname()[1],
            grpc_management_port=free_port(),
            handler_metrics_port=free_port(),
            backend_port=free_port(),
        )
        (tmp_path / "model-store").mkdir()
        (tmp_path / "model-store" / archive.name).write_bytes(archive.read_bytes())
        started = time.monotonic()
        try:
            with pytest.raises(TorchServeError, match=r"Address already in use|Failed to bind"):
                server.start(tmp_path / "model-store" / archive.name)
        finally:
            server.stop()  # also when the start did not fail as it should
    assert time.monotonic() - started < 60


def test_a_server_is_found_again_from_the_config_it_wrote(tmp_path):
    behind_nginx = replace(LocalTorchServe.on_port(tmp_path, 9100), worker_port=9300)
    direct = replace(LocalTorchServe(tmp_path, inference_port=9200), front_door=False)
    for server in (behind_nginx, direct):
        server.write_config()
        assert LocalTorchServe.of_home(tmp_path) == server
    assert LocalTorchServe.of_home(tmp_path / "never-started") == LocalTorchServe(tmp_path / "never-started")
