"""A docker-registry (Debian's `docker-registry`, the CNCF distribution) on 127.0.0.1: the stand-in for ECR.

Read back through the registry's HTTP API (/v2/...), not through buildah: the digest a push records must be the one
the registry serves, since that is what a release pins and what a node pulls.
"""

from __future__ import annotations

import base64
import crypt
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)


@dataclass
class Registry:
    host: str
    folder: Path
    process: subprocess.Popen = field(repr=False)
    credentials: tuple[str, str] | None = None

    def get(self, path: str, accept: str | None = None) -> tuple[dict[str, str], bytes]:
        """(headers, body) of GET /v2/<path>; raises urllib.error.HTTPError for a 4xx/5xx."""
        request = urllib.request.Request(f"http://{self.host}/v2/{path}")
        if accept:
            request.add_header("Accept", accept)
        if self.credentials:
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(response.headers), response.read()

    def manifest(self, name: str, reference: str) -> tuple[str, dict]:
        """(Docker-Content-Digest, manifest) of name:tag or name@digest."""
        headers, body = self.get(f"{name}/manifests/{reference}", accept=MANIFEST_TYPES)
        return headers["Docker-Content-Digest"], json.loads(body)

    def image_config(self, name: str, reference: str) -> dict:
        """The image configuration blob (User, Labels, Env, ...) that the manifest names."""
        _, manifest = self.manifest(name, reference)
        _, body = self.get(f"{name}/blobs/{manifest['config']['digest']}")
        return json.loads(body)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_registry(folder: Path, port: int, credentials: tuple[str, str] | None = None) -> Registry:
    """`docker-registry serve` on 127.0.0.1:port with its storage in folder; htpasswd auth when credentials are given."""
    executable = shutil.which("docker-registry")
    assert executable, "docker-registry is not installed: run `make install` (scripts/install.sh)"
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(folder / "storage")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    if credentials:
        user, password = credentials
        (folder / "htpasswd").write_text(f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n")
        config["auth"] = {"htpasswd": {"realm": "wms-test", "path": str(folder / "htpasswd")}}
    (folder / "config.yml").write_text(yaml.safe_dump(config))
    log = open(folder / "registry.log", "w")  # noqa: SIM115 (the registry keeps writing after this function returns)
    # The registry reads REGISTRY_* variables as settings: buildah's REGISTRY_AUTH_FILE would become `auth.file`.
    environment = {name: value for name, value in os.environ.items() if not name.startswith("REGISTRY_")}
    process = subprocess.Popen(
        [executable, "serve", str(folder / "config.yml")], stdout=log, stderr=subprocess.STDOUT, env=environment
    )
    registry = Registry(f"127.0.0.1:{port}", folder, process, credentials)
    wait_until_answering(registry)
    return registry


def wait_until_answering(registry: Registry, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if registry.process.poll() is not None:
            raise AssertionError(f"docker-registry exited: {(registry.folder / 'registry.log').read_text()[-2000:]}")
        try:
            registry.get("")
            return
        except urllib.error.HTTPError as error:
            if error.code == 401:  # answering, and asking for the password
                return
        except OSError:
            pass
        time.sleep(0.2)
    registry.stop()
    raise AssertionError(f"docker-registry did not answer on {registry.host} within {timeout} s")
