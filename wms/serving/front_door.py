"""nginx in front of TorchServe's inference API: only the API passes, everything else is answered in its JSON shape.

TorchServe's Netty frontend answers a body over max_request_size with a bare 413 and a body labelled
application/x-www-form-urlencoded with a 500 from its form decoder, both before the handler runs; its other APIs
(KServe's /v1 and /v2, /explanations) answered a photo with 500, and its own errors come in a shape of their own.
nginx passes POST /predictions/<model>[/<version>] and GET /ping, and answers the rest with the handler's kind of
JSON error (serving/nginx.conf.template).

A canary: while a candidate version is tried, the front door sends a share of the requests that name no version to
it (nginx's split_clients on the request id) and the rest to the version in service; a request that names a version
goes to that version.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from string import Template

from wms.core.local_state import MODEL_NAME
from wms.core.project import SERVING_DIR
from wms.inference.uploads import INTERNAL_ERROR
from wms.serving.site import write_site

TEMPLATE = SERVING_DIR / "nginx.conf.template"
UPSTREAM_TIMEOUT_S = 130
"""How long the front door waits for TorchServe's answer (its response timeout is 120 s)."""
DRAIN_TIMEOUT_S = UPSTREAM_TIMEOUT_S + 10
"""How long a reload waits for the old workers' last requests."""


MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class FrontDoorError(RuntimeError):
    """nginx is missing, refused its configuration, or did not start."""


@dataclass(frozen=True)
class Canary:
    """A candidate version beside the one in service, and the share (percent) of unversioned requests it answers."""

    version: str
    weight: int

    def __post_init__(self) -> None:
        if isinstance(self.weight, bool) or not isinstance(self.weight, int) or not 0 <= self.weight <= 100:
            raise ValueError(f"a canary's weight is a whole percent from 0 to 100, not {self.weight!r}")
        if not MODEL_NAME_PATTERN.fullmatch(self.version):
            raise ValueError(f"version {self.version!r} must be letters, digits, '-', '_' or '.'")


def traffic_split(model: tuple[str, str] | None, canary: Canary | None) -> str:
    """nginx blocks that set $wms_upstream_path, the path a prediction request goes on to TorchServe with: the
    request's own, except that one naming no version goes to the candidate for `canary.weight` percent of requests."""
    if model is None:
        return "map $uri $wms_upstream_path {\n        default $uri;\n    }"
    name, in_service = model
    unversioned, stable = f"/predictions/{name}", f"/predictions/{name}/{in_service}"
    target, split = stable, ""
    if canary is not None and canary.weight == 100:
        target = f"{unversioned}/{canary.version}"
    elif canary is not None and canary.weight > 0:
        target = "$wms_split"
        split = (
            'split_clients "${request_id}" $wms_split {\n'
            f"        {canary.weight}% {unversioned}/{canary.version};\n"
            f"        * {stable};\n"
            "    }\n    "
        )
    return f"{split}map $uri $wms_upstream_path {{\n        default $uri;\n        {unversioned} {target};\n    }}"


def render_config(
    prefix: Path,
    web_root: Path,
    listen_host: str,
    listen_port: int,
    upstream_port: int,
    max_body_bytes: int,
    daemon: bool = True,
    model: tuple[str, str] | None = None,
    torchserve_key: str | None = None,
    workers_user: str | None = None,
    canary: Canary | None = None,
) -> str:
    """The nginx configuration for these ports, with its pid, logs and temp files under `prefix`, serving the page
    and the API's description (wms.serving.site) from `web_root`.

    `model` (name, version) goes into its JSON errors, as the handler puts it into every answer. `torchserve_key`,
    TorchServe's inference key, goes to TorchServe as its Authorization; the client's own Authorization goes on as
    X-WMS-Authorization, which the handler checks. `workers_user`: who nginx's workers run as, when it is started as
    root (else nobody). `canary`: a candidate version that answers its share of the requests naming no version.
    """
    if torchserve_key is not None and not re.fullmatch(r"[A-Za-z0-9+/=_-]+", torchserve_key):
        raise ValueError("TorchServe's key must be base64: the key file may be damaged; restart the server")
    model_fields = "" if model is None else f', "model": {json.dumps(model[0])}, "model_version": {json.dumps(model[1])}'
    if "'" in model_fields or "$" in model_fields:
        raise ValueError(f"model name and version must not contain ' or $: {model}")
    if model is not None and not MODEL_NAME_PATTERN.fullmatch(model[0]):
        raise ValueError(f"model name {model[0]!r} must be letters, digits, '-', '_' or '.' (TorchServe's own rule)")
    return Template(TEMPLATE.read_text()).substitute(
        model_fields=model_fields,
        model_name=model[0] if model else "<model>",
        model_pattern=re.escape(model[0]) if model else "[^/]+",
        prefix=str(prefix),
        web_root=str(web_root),
        listen_host=listen_host,
        listen_port=listen_port,
        upstream_port=upstream_port,
        inner_port=inner_port(upstream_port),
        torchserve_authorization=f"Bearer {torchserve_key}" if torchserve_key else "",
        max_body_bytes=max_body_bytes,
        upstream_timeout_s=UPSTREAM_TIMEOUT_S,
        daemon="on" if daemon else "off",
        workers_user=f"user {workers_user};" if workers_user else "",
        traffic_split=traffic_split(model, canary),
        internal_error=INTERNAL_ERROR.replace("'", "\\'"),
    )


def inner_port(upstream_port: int) -> int:
    """The loopback port where nginx turns TorchServe's own errors into JSON: the one after TorchServe's."""
    return upstream_port + 1


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if not found:
        raise FrontDoorError("nginx is not installed: run scripts/install.sh (it installs Debian's nginx-light)")
    return found


@dataclass(frozen=True)
class FrontDoor:
    prefix: Path
    """Its configuration (which holds TorchServe's key), pid, logs, temp files and `web_root`."""
    web_root: Path
    """The page and the API's description (wms.serving.site)."""
    listen_host: str
    listen_port: int
    upstream_port: int
    max_body_bytes: int
    model: tuple[str, str] | None = None
    """(name, version) of the model behind it, for its JSON errors."""
    torchserve_key: str | None = None
    """TorchServe's inference key, when its token authorization is on."""
    canary: Canary | None = None
    """A candidate version beside `model`'s, answering its share of the requests that name no version."""

    @property
    def config(self) -> Path:
        return self.prefix / "nginx.conf"

    def start(self) -> None:
        self._write_config()
        self._nginx()
        deadline = time.monotonic() + 10
        while not self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not self.running():
            raise FrontDoorError(f"nginx did not start: see {self.prefix / 'logs' / 'nginx-error.log'}")

    def reload(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Apply a new configuration (another model version, another split) without dropping connections; return
        once every worker with the old configuration has answered its last request and exited. nginx's reload is
        asynchronous: a request sent just after it could otherwise still meet an old worker, and a version that the
        new configuration no longer sends to, unregistered at once, would cut short the requests still on their way
        to it (TorchServe stops a version's workers mid-request)."""
        old = self._workers()
        self._write_config()
        self._nginx("-s", "reload")
        deadline = time.monotonic() + timeout_s
        while old & self._workers() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _workers(self) -> set[int]:
        """nginx's worker processes now, those finishing their requests after a reload included."""
        import psutil

        try:
            master = psutil.Process(int((self.prefix / "nginx.pid").read_text().strip()))
            workers = master.children()
        except (OSError, ValueError, psutil.Error):
            return set()
        alive = set()
        for worker in workers:
            with contextlib.suppress(psutil.Error):  # one that has just exited
                if worker.status() != psutil.STATUS_ZOMBIE:
                    alive.add(worker.pid)
        return alive

    def _write_config(self) -> None:
        for folder in ("logs", "nginx-tmp"):
            (self.prefix / folder).mkdir(parents=True, exist_ok=True)
        write_site(self.web_root, self.model[0] if self.model else MODEL_NAME)
        rendered = render_config(
            self.prefix,
            self.web_root,
            self.listen_host,
            self.listen_port,
            self.upstream_port,
            self.max_body_bytes,
            model=self.model,
            torchserve_key=self.torchserve_key,
            # Started as root, nginx would run its workers as nobody, who may not enter the owner's private folders
            # (the server's home, which holds TorchServe's key); TorchServe itself runs as root then, too.
            workers_user="root" if os.geteuid() == 0 else None,
            canary=self.canary,
        )
        self.config.write_text(rendered)
        self._nginx("-t")  # a configuration nginx refuses fails here, with its reason

    def stop(self) -> None:
        if self.running():
            self._nginx("-s", "quit")
            deadline = time.monotonic() + 10
            while self.running() and time.monotonic() < deadline:
                time.sleep(0.1)

    def running(self) -> bool:
        pid_file = self.prefix / "nginx.pid"
        try:
            Path(f"/proc/{int(pid_file.read_text().strip())}").stat()
        except (OSError, ValueError):
            return False
        return True

    def _nginx(self, *arguments: str) -> None:
        command = [nginx_binary(), "-p", str(self.prefix), "-c", str(self.config), *arguments]
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise FrontDoorError(f"nginx {' '.join(arguments) or 'start'} failed: {completed.stderr.strip()}")
