"""The serving image, built for real: buildah builds serving/Dockerfile from the context `serving_image` prepares,
pushes it to a docker-registry on 127.0.0.1 (the stand-in for ECR), and the registry's HTTP API serves the digest the
push recorded. Then the image, pulled back by that digest, serves a photo as uid 1000.

The base is a debootstrap-made Debian bookworm (no public registry is reachable) and ONNX Runtime is the CPU variant
(ONNXRUNTIME=cpu) to keep the download small; the Dockerfile is production's. About 4 minutes on 2 cores.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import free_port, free_port_block
from tests.images.conftest import run
from tests.photos import encode
from wms.deployment.container_image import (
    IMAGE_WEB_ROOT,
    BuildContext,
    PushedImage,
    build_and_push,
    pinned_reference,
    prepare_build_context,
)
from wms.serving.front_door import render_config
from wms.serving.torchserve import MAX_REQUEST_BYTES, build_archive
from wms.training.export import export_onnx
from wms.training.model import build_unet

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL, VERSION = "wms-unet", "7"
REPOSITORY_NAME = "wms-serving"
TOKEN = "image-test-token"
HOME = "/home/model-server"
TOKEN_FILE = "/etc/wms-test/api-token"
"""Where the test mounts the token: buildah run keeps /run/secrets (production's /var/run/secrets/wms) for its own."""


@dataclass(frozen=True)
class Built:
    context: BuildContext
    image: PushedImage
    seconds: float


@pytest.fixture(scope="module")
def built(tmp_path_factory, debian_base, ca_bundle, registry) -> Built:
    folder = tmp_path_factory.mktemp("serving-image")
    onnx_path = export_onnx(build_unet("mobilenet_v2"), 64, folder / "model.onnx", {})
    archive = build_archive(onnx_path, MODEL, VERSION, folder / "archives")
    context = prepare_build_context(archive, MODEL, VERSION, folder / "context")
    started = time.monotonic()
    image = build_and_push(
        context,
        f"{registry.host}/{REPOSITORY_NAME}",
        builder="buildah",
        tls_verify=False,
        build_args={"BASE_IMAGE": debian_base, "ONNXRUNTIME": "cpu"},
        ca_bundle=ca_bundle,
    )
    return Built(context, image, time.monotonic() - started)


def test_the_registry_serves_the_digest_that_the_push_recorded(built, registry):
    print(f"build and push: {built.seconds:.0f} s")
    digest, manifest = registry.manifest(REPOSITORY_NAME, built.image.tag)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", built.image.digest)
    assert digest == built.image.digest
    assert built.image.reference == pinned_reference(f"{registry.host}/{REPOSITORY_NAME}", digest)
    assert registry.manifest(REPOSITORY_NAME, built.image.digest)[0] == digest  # the pinned form resolves
    assert manifest["config"]["digest"].startswith("sha256:")


def test_the_image_runs_as_uid_1000_and_carries_the_model_name_version_and_context(built, registry):
    config = registry.image_config(REPOSITORY_NAME, built.image.digest)["config"]
    assert config["User"] == "1000:1000"
    labels = config["Labels"]
    assert labels["io.wms.model.name"] == MODEL
    assert labels["io.wms.model.version"] == VERSION
    assert labels["io.wms.build-context.digest"] == built.context.digest
    assert labels["io.wms.onnxruntime"] == "cpu"
    assert f"MODEL_NAME={MODEL}" in config["Env"]
    assert config["Entrypoint"] == ["/usr/bin/tini", "--"]
    assert config["Cmd"] == [f"{HOME}/start.sh"]


def test_the_image_pulled_by_its_digest_serves_a_photo_as_uid_1000(built, tmp_path):
    container = run("buildah", "from", "--tls-verify=false", f"docker://{built.image.reference}").stdout.strip()
    ports = free_port_block(6)  # the front door's inner port is the one after the backend's
    mounts = serving_settings(
        built.context.path, tmp_path, front=ports, backend=ports + 1, management=ports + 3, metrics=ports + 4
    )
    handler_metrics = ports + 5
    with served(container, mounts, handler_metrics, tmp_path / "container.log") as server:
        wait_until_serving(server, ports)
        photo = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)), "JPEG")
        status, answer = post(ports, photo, TOKEN)
        assert status == 200, answer
        assert answer["model"] == MODEL and answer["model_version"] == VERSION
        assert (answer["width"], answer["height"]) == (320, 240)
        assert post(ports, photo, "wrong-token")[0] == 401
        users = {pid: uid_of(pid) for pid in server.processes()}
        assert users and set(users.values()) == {1000}, users
    run("buildah", "rm", container)


def serving_settings(context: Path, folder: Path, front: int, backend: int, management: int, metrics: int) -> dict[str, Path]:
    """Production's config.properties and nginx.conf on free ports (the container shares the host's network)."""
    properties = (context / "config.properties").read_text()
    for key, value in {
        "inference_address": f"http://127.0.0.1:{backend}",
        "management_address": f"http://127.0.0.1:{management}",
        "metrics_address": f"http://127.0.0.1:{metrics}",
    }.items():
        properties, count = re.subn(rf"^{key}=.*$", f"{key}={value}", properties, flags=re.MULTILINE)
        assert count == 1, f"config.properties has no single {key}"
    properties += f"grpc_inference_port={free_port()}\ngrpc_management_port={free_port()}\n"
    nginx = render_config(
        Path("/tmp/wms-front-door"),
        IMAGE_WEB_ROOT,
        "127.0.0.1",
        front,
        backend,
        MAX_REQUEST_BYTES,
        daemon=True,
        model=(MODEL, VERSION),
    )
    files = {"config.properties": properties, "nginx.conf": nginx, "api-token": TOKEN + "\n"}
    for name, text in files.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o644)
    return {
        f"{HOME}/config.properties": folder / "config.properties",
        f"{HOME}/nginx.conf": folder / "nginx.conf",
        TOKEN_FILE: folder / "api-token",
    }


class served:
    """`buildah run` of the image's entry point (tini, start.sh); on exit every process inside it is stopped.

    nginx daemonizes out of the process group, so the processes are found by their root directory: buildah's chroot
    of this run, shared by everything started inside it.
    """

    def __init__(self, container: str, mounts: dict[str, Path], handler_metrics_port: int, log: Path):
        volumes = [part for target, source in mounts.items() for part in ("-v", f"{source}:{target}:ro")]
        self.command = [
            "buildah", "run", "--isolation", "chroot", *volumes,
            "--env", f"WMS_HANDLER_METRICS_PORT={handler_metrics_port}", "--env", f"WMS_API_KEY_FILE={TOKEN_FILE}",
            container, "--", "/usr/bin/tini", "--", f"{HOME}/start.sh",
        ]  # fmt: skip
        self.log = log
        self.root: str | None = None

    def __enter__(self):
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def processes(self) -> list[int]:
        """The processes running inside this container (empty until buildah has entered the chroot)."""
        if self.root is None:
            self.root = next((root for pid in descendants(self.process.pid) if (root := root_of(pid)) not in (None, "/")), None)
        return [pid for pid in all_pids() if self.root and root_of(pid) == self.root]

    def __exit__(self, *exc):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.processes():
                with _gone():
                    os.kill(pid, sig)
            deadline = time.monotonic() + 15
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.3)
        with _gone():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


class _gone:
    """Ignore a process that ended meanwhile."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        return kind is ProcessLookupError


def all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for candidate in all_pids():
        try:
            parent = int(Path(f"/proc/{candidate}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(candidate)
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def root_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/root")
    except OSError:
        return None


def uid_of(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return int(re.search(r"^Uid:\s+(\d+)", status, flags=re.MULTILINE)[1])


def wait_until_serving(server: served, port: int, timeout: float = 180) -> None:
    """Until nginx's /ping answers 200 and the model's worker answers a request (an empty body: 400)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200 and post(port, b"", TOKEN)[0] == 400:
                return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"the image did not serve on {port} within {timeout} s; its log ends: {server.log.read_text()[-4000:]}")


def post(port: int, body: bytes, token: str) -> tuple[int, dict | None]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request(
        "POST", f"/predictions/{MODEL}", body=body, headers={"Content-Type": "image/jpeg", "Authorization": f"Bearer {token}"}
    )
    response = connection.getresponse()
    payload = response.read()
    try:
        return response.status, json.loads(payload)
    except ValueError:
        return response.status, None
