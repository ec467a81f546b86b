"""nginx in front of TorchServe's inference API: what TorchServe's frontend answers badly, answered in JSON.

TorchServe's Netty frontend answers a body over max_request_size with a bare 413 and a body labelled
application/x-www-form-urlencoded with a 500 from its form decoder, both before the handler runs. nginx refuses
those two with the handler's kind of JSON error and passes everything else through (serving/nginx.conf.template).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from string import Template

TEMPLATE = Path(__file__).resolve().parent.parent / "serving" / "nginx.conf.template"


class FrontDoorError(RuntimeError):
    """nginx is missing, refused its configuration, or did not start."""


def render_config(
    prefix: Path,
    listen_host: str,
    listen_port: int,
    upstream_port: int,
    max_body_bytes: int,
    daemon: bool = True,
    model: tuple[str, str] | None = None,
) -> str:
    """The nginx configuration for these ports, with its pid, logs and temp files under `prefix`.

    `model` (name, version) goes into its JSON errors, as the handler puts it into every answer.
    """
    model_fields = "" if model is None else f', "model": {json.dumps(model[0])}, "model_version": {json.dumps(model[1])}'
    if "'" in model_fields or "$" in model_fields:
        raise ValueError(f"model name and version must not contain ' or $: {model}")
    return Template(TEMPLATE.read_text()).substitute(
        model_fields=model_fields,
        prefix=str(prefix),
        listen_host=listen_host,
        listen_port=listen_port,
        upstream_port=upstream_port,
        max_body_bytes=max_body_bytes,
        daemon="on" if daemon else "off",
    )


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if not found:
        raise FrontDoorError("nginx is not installed: run scripts/install.sh (it installs Debian's nginx-light)")
    return found


@dataclass(frozen=True)
class FrontDoor:
    prefix: Path
    listen_host: str
    listen_port: int
    upstream_port: int
    max_body_bytes: int
    model: tuple[str, str] | None = None
    """(name, version) of the model behind it, for its JSON errors."""

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

    def reload(self) -> None:
        """Apply a new configuration (another model version) without dropping connections."""
        self._write_config()
        self._nginx("-s", "reload")

    def _write_config(self) -> None:
        for folder in ("logs", "nginx-tmp"):
            (self.prefix / folder).mkdir(parents=True, exist_ok=True)
        rendered = render_config(
            self.prefix, self.listen_host, self.listen_port, self.upstream_port, self.max_body_bytes, model=self.model
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
