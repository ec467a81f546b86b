"""A local Prometheus beside the local TorchServe: Debian's `prometheus` binary on 127.0.0.1, scraping TorchServe's
metrics and the handler's, and evaluating monitoring/prometheus/rules.yml, so the rules can be seen at work.

State (config, TSDB, PID file, log) lives in the local state folder (StateLayout.home / "prometheus").
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import string
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from wms.core.processes import alive
from wms.core.project import MONITORING_DIR

TEMPLATE = Path(__file__).resolve().parent / "prometheus-local.yml.template"
"""The local Prometheus's configuration (package data: an installed wheel has it too)."""
RULES = MONITORING_DIR / "prometheus" / "rules.yml"
"""The recording and alerting rules of a checkout (the chart's files/prometheus-rules.yml); passed in elsewhere."""


DEFAULT_PORT = 9090
LOCAL_PROMETHEUS_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
"""Where `wms monitor start` runs Prometheus unless told another port."""


class MonitoringError(RuntimeError):
    """Prometheus could not start or stop; the message says why and what to do."""


@dataclass(frozen=True)
class LocalPrometheus:
    home: Path
    ts_metrics_port: int = 8082
    handler_metrics_port: int = 8083
    port: int = DEFAULT_PORT
    host: str = "127.0.0.1"
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    start_timeout_s: float = 30.0
    rules_file: Path = RULES

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "prometheus.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "prometheus.log"

    def render_config(self) -> Path:
        """prometheus.yml from the template, with absolute paths (Prometheus resolves rule files from the config)."""
        if not self.rules_file.is_file():
            raise MonitoringError(
                f"no Prometheus rules at {self.rules_file}: run from a checkout of WMS, or give the rules file "
                "(helm/wms-serving/files/prometheus-rules.yml) with --rules"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "prometheus.yml"
        config.write_text(
            string.Template(TEMPLATE.read_text()).substitute(
                scrape_interval=self.scrape_interval,
                evaluation_interval=self.evaluation_interval,
                rules_file=str(self.rules_file.resolve()),
                host=self.host,
                ts_metrics_port=self.ts_metrics_port,
                handler_metrics_port=self.handler_metrics_port,
            )
        )
        return config

    def start(self) -> None:
        """Start Prometheus in the background; return once it answers /-/ready."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise MonitoringError("prometheus is not installed: run `make install` (Debian's prometheus package)")
        if self.running():
            raise MonitoringError(f"Prometheus already runs from {self.home} (pid {self._pid()}): `wms monitor stop` first")
        if _port_taken(self.host, self.port):
            raise MonitoringError(f"port {self.port} on {self.host} is taken: pick another with --port")
        command = [
            binary,
            f"--config.file={self.render_config()}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--web.enable-lifecycle",
        ]
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=log, cwd=self.home, start_new_session=True)
        self.pid_file.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise MonitoringError(f"Prometheus exited at start (code {process.returncode}):\n{self._log_tail()}")
            if self.is_ready():
                return
            time.sleep(0.3)
        self.stop()
        raise MonitoringError(f"Prometheus did not become ready within {self.start_timeout_s:.0f} s:\n{self._log_tail()}")

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def running(self) -> bool:
        pid = self._pid()
        return pid is not None and alive(pid)

    def stop(self) -> bool:
        """Stop the Prometheus of this home; False when none ran."""
        pid = self._pid() if self.running() else None
        self.pid_file.unlink(missing_ok=True)
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not alive(pid):
                return True
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        return True

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _log_tail(self, lines: int = 15) -> str:
        text = self.log_file.read_text(errors="replace").splitlines() if self.log_file.exists() else []
        return "\n".join(text[-lines:]) + f"\n(full log in {self.log_file})"


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False
