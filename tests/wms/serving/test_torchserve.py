import json
import socket
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from tests.conftest import free_port, free_port_block
from tests.models import fails_on_bright_photos, wrong_input_model
from wms.serving.smoke import sample_photo
from wms.serving.torchserve import LocalTorchServe, TorchServeError, build_archive

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def archive(tmp_path_factory, untrained_onnx):
    folder = tmp_path_factory.mktemp("archive")
    return build_archive(untrained_onnx, "tiny", "4", folder / "store")


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
        try:  # "exited while starting": it failed on seeing TorchServe exit, not after waiting out the start timeout
            with pytest.raises(TorchServeError, match=r"exited while starting(.|\n)*(Address already in use|Failed to bind)"):
                server.start(tmp_path / "model-store" / archive.name)
        finally:
            server.stop()  # also when the start did not fail as it should


def test_a_server_is_found_again_from_the_config_it_wrote(tmp_path):
    behind_nginx = replace(LocalTorchServe.on_port(tmp_path, 9100), worker_port=9300)
    direct = replace(LocalTorchServe(tmp_path, inference_port=9200), front_door=False)
    for server in (behind_nginx, direct):
        server.write_config()
        assert LocalTorchServe.of_home(tmp_path) == server
    assert LocalTorchServe.of_home(tmp_path / "never-started") == LocalTorchServe(tmp_path / "never-started")


@pytest.fixture
def serving_version_1(tmp_path, untrained_onnx):
    onnx_path = untrained_onnx
    server = replace(LocalTorchServe.on_port(tmp_path / "home", free_port_block(8)), worker_port=free_port())
    server.deploy(build_archive(onnx_path, "tiny", "1", server.model_store), "tiny", "1")
    yield server, onnx_path
    server.stop()


def test_a_version_that_fails_its_smoke_test_never_takes_traffic(serving_version_1, tmp_path):
    server, _ = serving_version_1
    broken = build_archive(wrong_input_model(tmp_path / "broken.onnx"), "tiny", "2", server.model_store)
    with pytest.raises(TorchServeError, match="version 2 failed its smoke test before taking traffic, so version 1 keeps"):
        server.deploy(broken, "tiny", "2")
    assert server.predict("tiny", sample_photo())["model_version"] == "1"
    assert server.loaded_versions("tiny") == ["1"]


def test_a_version_left_beside_the_default_by_a_killed_deploy_is_smoke_tested_before_it_takes_traffic(
    serving_version_1, tmp_path
):
    server, _ = serving_version_1
    broken = build_archive(wrong_input_model(tmp_path / "broken.onnx"), "tiny", "2", server.model_store)
    server._management("POST", f"/models?url={broken.name}&initial_workers=1&synchronous=true")  # where the kill came
    with pytest.raises(TorchServeError, match="version 2 failed its smoke test before taking traffic, so version 1 keeps"):
        server.deploy(broken, "tiny", "2")
    assert server.predict("tiny", sample_photo())["model_version"] == "1"
    assert server.loaded_versions("tiny") == ["1"]


def test_a_start_cut_short_is_started_afresh_by_the_next_deploy(serving_version_1):
    server, onnx_path = serving_version_1
    server._front_door().stop()  # what a deploy killed between TorchServe's start and the front door's leaves
    assert server.running() and not server.is_up()
    server.deploy(build_archive(onnx_path, "tiny", "2", server.model_store), "tiny", "2")
    assert server.predict("tiny", sample_photo())["model_version"] == "2"


def test_a_new_version_answers_after_its_smoke_test_and_names_what_it_was_trained_on(serving_version_1):
    server, onnx_path = serving_version_1
    server.deploy(build_archive(onnx_path, "tiny", "2", server.model_store, trained_on="synthetic"), "tiny", "2")
    answer = server.predict("tiny", sample_photo())
    assert (answer["model_version"], answer["trained_on"]) == ("2", "synthetic")
    assert "will not find the digit window in real meter photos" in answer["notice"]


def test_archives_of_one_model_built_at_once_do_not_share_a_staging_folder(tmp_path):
    """torch-model-archiver stages files in $TMPDIR/<model name>: 32 builds in 8 threads failed before each got its own."""
    onnx_path = fails_on_bright_photos(tmp_path / "model.onnx")
    with ThreadPoolExecutor(8) as pool:
        built = list(pool.map(lambda n: build_archive(onnx_path, "same", str(n), tmp_path / f"store-{n}"), range(32)))
    assert all(zipfile.is_zipfile(archive) for archive in built)
    assert {json.loads(zipfile.ZipFile(archive).read("MAR-INF/MANIFEST.json"))["model"]["modelVersion"] for archive in built} == {
        str(n) for n in range(32)
    }
