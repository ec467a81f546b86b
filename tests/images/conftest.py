"""Image fixtures: buildah storage of the test's own, a Debian base image made without any registry, registries.

No public image registry is reachable from the test machines, so the serving image's base (python:3.11-slim-bookworm
in production) is made with debootstrap: Debian bookworm with python3 and its venv module, imported into buildah from
scratch. It is made once per session (about a minute) and thrown away with the session's buildah storage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.images.registry import Registry, start_registry

DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
BASE_IMAGE = "localhost/wms-test-base:bookworm"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: run `make install` (scripts/install.sh installs buildah, docker-registry, debootstrap)"
        )
    return path


def run(*command: str, **options) -> subprocess.CompletedProcess:
    completed = subprocess.run(command, capture_output=True, text=True, **options)
    assert completed.returncode == 0, f"{' '.join(command[:3])} failed: {completed.stdout[-2000:]}{completed.stderr[-2000:]}"
    return completed


@pytest.fixture(scope="session")
def buildah_storage(tmp_path_factory):
    """buildah's images and containers in a folder of this session (CONTAINERS_STORAGE_CONF), removed at the end.

    Credentials go to an auth file of the session too (REGISTRY_AUTH_FILE), never to root's.
    """
    tool("buildah")
    if os.geteuid() != 0:
        pytest.fail(
            "tests/images run buildah (chroot isolation) and debootstrap, which need root: run them as root or with sudo -E"
        )
    folder = tmp_path_factory.mktemp("buildah")
    (folder / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\nrunroot = "{folder / "run"}"\ngraphroot = "{folder / "graph"}"\n'
    )
    (folder / "auth.json").write_text('{"auths": {}}')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONTAINERS_STORAGE_CONF", str(folder / "storage.conf"))
        patch.setenv("REGISTRY_AUTH_FILE", str(folder / "auth.json"))
        yield folder
        subprocess.run(["buildah", "rm", "--all"], capture_output=True)
        subprocess.run(["buildah", "rmi", "--all", "--force"], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def debian_base(buildah_storage, tmp_path_factory) -> str:
    """The name of a Debian bookworm image with python3 (venv) and CA certificates, made with debootstrap."""
    rootfs = tmp_path_factory.mktemp("debootstrap") / "rootfs"
    run(tool("debootstrap"), "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(rootfs), DEBIAN_MIRROR)
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):  # as in the slim images: the build runs apt-get update
        for path in (rootfs / leftover).glob("*"):
            if path.is_file():
                path.unlink()
    container = run("buildah", "from", "scratch").stdout.strip()
    run("buildah", "add", "--quiet", container, str(rootfs), "/")
    run(
        "buildah",
        "config",
        "--env",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--cmd",
        "/bin/bash",
        container,
    )
    run("buildah", "commit", "--quiet", "--rm", container, BASE_IMAGE)
    shutil.rmtree(rootfs)
    return BASE_IMAGE


@pytest.fixture(scope="session")
def ca_bundle() -> Path | None:
    """The host's CA bundle, mounted into RUN steps: pip inside the build then trusts what the host trusts."""
    return HOST_CA_BUNDLE if HOST_CA_BUNDLE.exists() else None


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Registry:
    started = start_registry(tmp_path_factory.mktemp("registry"), free_port())
    yield started
    started.stop()
    shutil.rmtree(started.folder, ignore_errors=True)
