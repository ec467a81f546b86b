"""Model archives and a TorchServe on this machine: build, start, swap models, stop.

Each LocalTorchServe keeps its config, model store, logs and PID file in its own home folder, so several can
run side by side on different ports (TorchServe's CLI otherwise keeps one PID file per machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from wms.core.files import copy_atomically, written_atomically
from wms.core.local_state import default_serve_port
from wms.core.processes import alive
from wms.core.project import SERVING_DIR
from wms.inference.model_card import MODEL_CARD_FILE
from wms.serving.front_door import Canary, FrontDoor, FrontDoorError
from wms.serving.smoke import smoke_test

MAX_REQUEST_BYTES = 16 * 1024 * 1024
"""Photos from phones with 48- or 50-megapixel sensors commonly run to 8-12 MB as JPEG, more than TorchServe's
default of 6.5 MB; 16 MiB leaves room for them, while what a body may decode to is capped separately by the
handler's pixel limit (wms.inference.uploads.PhotoLimits)."""
SHARED_PROPERTIES = (
    "metrics_mode=prometheus",
    f"max_request_size={MAX_REQUEST_BYTES}",
    f"max_response_size={MAX_REQUEST_BYTES}",
    "install_py_dep_per_model=false",
)
"""The config.properties lines of every WMS TorchServe, the local one and the serving image's (wms.deployment)."""


@dataclass(frozen=True)
class BatchSettings:
    """TorchServe's dynamic batching for the model, written into the archive's model-config.yaml."""

    batch_size: int = 8
    """Most requests handed to one handler call."""
    max_batch_delay_ms: int = 2
    """Longest wait for more requests once one has come: a lone request waits this much (10 ms cost 10 ms of p50 at
    concurrency 1 on the CPU and bought no throughput there; a GPU may want more)."""
    response_timeout_s: int = 120

    def model_config(self) -> str:
        return (
            f"batchSize: {self.batch_size}\n"
            f"maxBatchDelay: {self.max_batch_delay_ms}\n"
            f"responseTimeout: {self.response_timeout_s}\n"
        )


class TorchServeError(RuntimeError):
    """TorchServe refused a command or did not become ready; the message says what it answered."""


def build_archive(
    onnx_path: Path,
    model_name: str,
    version: str,
    store: Path,
    batching: BatchSettings = BatchSettings(),
    trained_on: str = "unknown",
) -> Path:
    """Pack the ONNX model, the handler, the batching settings and what the model was trained on (which every answer
    names) into store/<model_name>-v<version>.mar."""
    store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "model-config.yaml"
        config.write_text(batching.model_config())
        card = Path(scratch) / MODEL_CARD_FILE
        card.write_text(json.dumps({"trained_on": trained_on}))
        _run(
            [
                str(Path(sys.executable).with_name("torch-model-archiver")),
                "--model-name",
                model_name,
                "--version",
                version,
                "--serialized-file",
                str(onnx_path),
                "--handler",
                str(SERVING_DIR / "handler.py"),
                "--config-file",
                str(config),
                "--extra-files",
                str(card),
                "--export-path",
                scratch,
                "--force",
            ],
            # the archiver stages the files in $TMPDIR/<model name>: builds of one model at once would share it
            env=os.environ | {"TMPDIR": scratch},
        )
        target = store / f"{model_name}-v{version}.mar"
        copy_atomically(Path(scratch) / f"{model_name}.mar", target)
    return target


def archive_model(archive: Path) -> tuple[str, str]:
    """(model name, version) from a model archive's manifest."""
    with zipfile.ZipFile(archive) as packed:
        manifest = json.loads(packed.read("MAR-INF/MANIFEST.json"))["model"]
    return manifest["modelName"], manifest.get("modelVersion", "")


KEY_FILE = "key_file.json"
"""Where TorchServe writes its keys: its working folder, the server's home."""
KEY_LIFETIME_MINUTES = 60 * 24 * 365 * 10
"""TorchServe's keys expire after an hour by default; a local server keeps its keys until it restarts."""


@dataclass(frozen=True)
class LocalTorchServe:
    home: Path
    host: str = "127.0.0.1"
    inference_port: int = 8080
    management_port: int = 8081
    metrics_port: int = 8082
    worker_port: int = 9000
    handler_metrics_port: int = 8083
    grpc_inference_port: int = 8084
    grpc_management_port: int = 8085
    backend_port: int = 8086
    """TorchServe's own inference port on 127.0.0.1, behind the front door (which listens on inference_port, and on
    the port after this one inside: wms.serving.front_door.inner_port)."""
    front_door: bool = True
    """Put nginx in front of the inference API (wms.serving.front_door); False serves TorchServe's port directly."""
    workers: int = 1
    api_key_file: Path | None = None
    """A file holding the bearer token that clients must send; None asks for none (loopback only)."""
    start_timeout_s: float = 120.0

    @classmethod
    def on_port(cls, home: Path, port: int) -> LocalTorchServe:
        """A server whose ports run on from `port`: inference, management, metrics, the handler's metrics, the two
        gRPC ports, then TorchServe's own inference port behind the front door and the front door's inner port
        (8080 gives the defaults, to 8087)."""
        return cls(
            home=home,
            inference_port=port,
            management_port=port + 1,
            metrics_port=port + 2,
            handler_metrics_port=port + 3,
            grpc_inference_port=port + 4,
            grpc_management_port=port + 5,
            backend_port=port + 6,
        )

    @classmethod
    def of_home(cls, home: Path) -> LocalTorchServe:
        """The server as last configured in `home` (its config.properties), or the one on $WMS_SERVE_PORT's ports."""
        config = home / "config.properties"
        if not config.exists():
            return cls.on_port(home, default_serve_port())
        entries = dict(line.lstrip("# ").split("=", 1) for line in config.read_text().splitlines() if "=" in line)

        def port(address_key: str) -> int:
            return int(entries[address_key].split()[0].rsplit(":", 1)[-1])

        front_door = "front_door_port" in entries
        return cls(
            home=home,
            inference_port=port("front_door_port") if front_door else port("inference_address"),
            **({"backend_port": port("inference_address")} if front_door else {}),
            front_door=front_door,
            management_port=port("management_address"),
            metrics_port=port("metrics_address"),
            worker_port=port("initial_worker_port"),
            grpc_inference_port=port("grpc_inference_port"),
            grpc_management_port=port("grpc_management_port"),
            handler_metrics_port=port("handler_metrics_port"),
        )

    @property
    def model_store(self) -> Path:
        return self.home / "model-store"

    @property
    def inference_url(self) -> str:
        return f"http://{self.host}:{self.inference_port}"

    @property
    def handler_metrics_url(self) -> str:
        return f"http://{self.host}:{self.handler_metrics_port}/metrics"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.management_port}"

    def write_config(self) -> Path:
        """config.properties for local use: loopback only, metrics for Prometheus, archives only from the model store.

        Behind the front door TorchServe's own token authorization is on: every management call (HTTP and gRPC) and
        every inference call needs a key from key_file.json in this server's home, which only its owner may read, so
        no other local process can load, drop or scale models. The front door adds the inference key; clients send
        the bearer token of ours that the handler checks (api_key_file), which the front door passes on beside it.
        Without the front door (a benchmark's baseline) the keys are off, as nothing would add them.
        """
        config = self.home / "config.properties"
        config.write_text(
            "\n".join(
                [
                    f"inference_address=http://{self.host}:{self.backend_port if self.front_door else self.inference_port}",
                    *([f"# front_door_port={self.inference_port} (nginx, wms.serving.front_door)"] if self.front_door else []),
                    f"management_address=http://{self.host}:{self.management_port}",
                    f"metrics_address=http://{self.host}:{self.metrics_port}",
                    f"model_store={self.model_store}",
                    f"initial_worker_port={self.worker_port}",
                    # TorchServe always opens gRPC too: bind it to loopback on ports of this server's own.
                    f"grpc_inference_address={self.host}",
                    f"grpc_management_address={self.host}",
                    f"grpc_inference_port={self.grpc_inference_port}",
                    f"grpc_management_port={self.grpc_management_port}",
                    f"# handler_metrics_port={self.handler_metrics_port} (WMS_HANDLER_METRICS_PORT)",
                    f"disable_token_authorization={'false' if self.front_door else 'true'}",
                    f"token_expiration_min={KEY_LIFETIME_MINUTES}",
                    "enable_model_api=true",
                    f"allowed_urls={_properties_value('file://' + re.escape(str(self.model_store)) + '/[^/]+[.]mar')}",
                    f"default_workers_per_model={self.workers}",
                    *SHARED_PROPERTIES,
                    "",
                ]
            )
        )
        return config

    def is_up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.inference_url}/ping", timeout=2) as response:
                return json.load(response).get("status") == "Healthy"
        except (OSError, ValueError):
            return False

    def start(self, archive: Path) -> None:
        """Start TorchServe in the background serving this archive; return once the model answers /ping."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o700)  # TorchServe writes its keys here (key_file.json), readable by anyone who may enter
        (self.home / KEY_FILE).unlink(missing_ok=True)  # the last run's keys: the new ones are awaited below
        self._canary_file.unlink(missing_ok=True)  # a fresh server serves one version until a canary is started
        self.model_store.mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        shutil.rmtree(self._metrics_dir, ignore_errors=True)  # the workers' metric files of an earlier run
        self._metrics_dir.mkdir(parents=True)
        command = [
            str(Path(sys.executable).with_name("torchserve")),
            "--start",
            "--ncs",
            "--model-store",
            str(self.model_store),
            "--ts-config",
            str(self.write_config()),
            "--models",
            archive.name,
        ]
        try:
            # TorchServe's Java process inherits the output streams: a file, not a pipe, or the call never returns.
            with open(self.home / "logs" / "torchserve-start.log", "ab") as log:
                completed = subprocess.run(
                    command, env=self._env(), stdout=log, stderr=log, cwd=self.home, start_new_session=True
                )
            if completed.returncode != 0:
                raise TorchServeError(
                    f"torchserve --start failed with exit code {completed.returncode}: see {self.home / 'logs'}"
                )
            if self.front_door:
                self._wait_for_keys()
                self._front_door(archive_model(archive)).start()  # answers 503 in JSON until TorchServe is up
            self._wait_until_ready()
        except (TorchServeError, FrontDoorError) as error:
            self.stop()  # a server that never became ready is not left behind
            raise TorchServeError(str(error)) from error

    def _front_door(self, model: tuple[str, str] | None = None) -> FrontDoor:
        keys = self.keys()
        canary = self.canary(model[0]) if model else None
        return FrontDoor(
            self.home / "front-door",
            self.home / "front-door" / "www",
            self.host,
            self.inference_port,
            self.backend_port,
            MAX_REQUEST_BYTES,
            model,
            keys.get("inference") if keys else None,
            canary,
        )

    def keys(self) -> dict[str, str] | None:
        """TorchServe's keys of this run ({'management': ..., 'inference': ...}), or None when it uses none."""
        try:
            written = json.loads((self.home / KEY_FILE).read_text())
            return {kind: written[kind]["key"] for kind in ("management", "inference")}
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _wait_for_keys(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.keys() is None:
            if time.monotonic() > deadline or not self.running():
                raise TorchServeError(f"TorchServe wrote no keys ({self.home / KEY_FILE}):\n{self._log_tail()}")
            time.sleep(0.2)

    def _env(self) -> dict[str, str]:
        tmp = self.home / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        handler = {
            "WMS_WORKERS_PER_MODEL": str(self.workers),
            "WMS_HANDLER_METRICS_PORT": str(self.handler_metrics_port),
            "PROMETHEUS_MULTIPROC_DIR": str(self._metrics_dir),
            **({"WMS_API_KEY_FILE": str(self.api_key_file)} if self.api_key_file else {}),
        }
        inherited = {key: value for key, value in os.environ.items() if key != "WMS_API_KEY_FILE"}
        return {
            **inherited,
            **handler,
            "TMPDIR": str(tmp),
            "LOG_LOCATION": str(self.home / "logs"),
            "METRICS_LOCATION": str(self.home / "logs"),
        }

    @property
    def _metrics_dir(self) -> Path:
        return self.home / "handler-metrics"

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            try:
                if self.is_up() and self._workers_ready():
                    return
            except OSError:  # the management API opens a moment after the inference API
                pass
            if not self.running():
                raise TorchServeError(f"TorchServe exited while starting:\n{self._log_tail()}")
            time.sleep(0.5)
        raise TorchServeError(f"TorchServe did not become ready within {self.start_timeout_s:.0f} s:\n{self._log_tail()}")

    def _workers_ready(self) -> bool:
        """Every registered model has a READY worker (TorchServe answers /ping before it has finished starting)."""
        models = self.models()
        return bool(models) and all(
            any(
                worker["status"] == "READY"
                for entry in self._management("GET", f"/models/{model['modelName']}")
                for worker in entry["workers"]
            )
            for model in models
        )

    def processes(self) -> list:
        """TorchServe, its Python workers and the front door's nginx, as psutil processes (for memory and ports)."""
        import psutil

        pids = []
        for pid_file in (self.home / "tmp" / ".model_server.pid", self.home / "front-door" / "nginx.pid"):
            with contextlib.suppress(OSError, ValueError):  # not started, or already stopped
                pids.append(int(pid_file.read_text().strip()))
        roots = [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]
        return roots + [child for root in roots for child in root.children(recursive=True)]

    def resident_bytes(self) -> int:
        """The resident memory of all those processes together."""
        import psutil

        total = 0
        for process in self.processes():
            with contextlib.suppress(psutil.Error):  # a worker may end between listing and reading
                total += process.memory_info().rss
        return total

    def running(self) -> bool:
        """Whether this home's TorchServe process is alive (it may still be starting, or listen elsewhere)."""
        pid_file = self.home / "tmp" / ".model_server.pid"
        try:
            return alive(int(pid_file.read_text().strip()))
        except (OSError, ValueError):
            return False

    def _log_tail(self, lines: int = 15) -> str:
        log = self.home / "logs" / "torchserve-start.log"
        text = log.read_text(errors="replace").splitlines() if log.exists() else []
        problems = [line for line in text if "Exception" in line or "ERROR" in line or "failed" in line]
        return "\n".join((problems or text)[-lines:]) + f"\n(full logs in {self.home / 'logs'})"

    def models(self) -> list[dict]:
        """[{'modelName': ..., 'modelUrl': ...}] as the management API lists them."""
        return self._management("GET", "/models").get("models", [])

    def deploy(self, archive: Path, model_name: str, version: str) -> None:
        """Serve this archive: start TorchServe, or register it beside the running version, smoke-test it there and
        only then switch to it. A version that fails is unregistered and the running one keeps answering.

        A deploy that was killed is finished by the next one: a server whose start was cut short (running, not
        answering) is started afresh, and a version left registered beside the default is smoke-tested before it
        takes traffic, like a new one."""
        if not self.is_up():
            self.stage(archive, model_name, version)
            return
        served = set(self.loaded_versions(model_name))
        self.stage(archive, model_name, version)
        self._management("PUT", f"/models/{model_name}/{version}/set-default")
        self._canary_file.unlink(missing_ok=True)  # a release replaces whatever a canary was trying
        if self.front_door:
            self._front_door((model_name, version)).reload()
        for old in served - {version}:
            self._management("DELETE", f"/models/{model_name}/{old}")

    def stage(self, archive: Path, model_name: str, version: str) -> None:
        """Load this archive beside the version in service and smoke-test it on its own path, where no request that
        names no version reaches it (the local staging); with nothing serving yet, start serving it. A version that
        fails its smoke test is unregistered and the version in service keeps answering."""
        if not self.is_up():
            self.stop()  # what a start cut short left running: TorchServe without the front door, or the reverse
            self.start(archive)
            return
        loaded = set(self.loaded_versions(model_name))
        in_service, canary = self.served_version(model_name), self.canary(model_name)
        for stale in loaded - {version, in_service, canary.version if canary else None}:  # staged once, never released
            self._management("DELETE", f"/models/{model_name}/{stale}")
        if version not in loaded:
            self._management("POST", f"/models?url={archive.name}&initial_workers={self.workers}&synchronous=true")
        if version != in_service:
            self._wait_for_worker(model_name, version)
            self._smoke_test_beside(model_name, version, {in_service} if in_service else set())

    @property
    def _canary_file(self) -> Path:
        return self.home / "front-door" / "canary.json"

    def canary(self, model_name: str) -> Canary | None:
        """The candidate version of the model being tried beside the one in service, with its share, if any."""
        try:
            recorded = json.loads(self._canary_file.read_text())
        except (OSError, ValueError):
            return None
        return Canary(recorded["version"], recorded["weight"]) if recorded.get("model") == model_name else None

    def start_canary(self, archive: Path, model_name: str, version: str, weight: int) -> None:
        """Serve `version` beside the version in service and send it `weight` percent of the requests that name no
        version: registered, smoke-tested on its own path, and only then given its share. A version that fails its
        smoke test is unregistered; the version in service answers throughout."""
        canary = Canary(version, weight)
        in_service = self._in_service_for_canary(model_name)
        if version == in_service:
            raise TorchServeError(f"version {version} of {model_name} is the version in service: a canary tries another")
        earlier = self.canary(model_name)
        if earlier is not None and earlier.version != version:  # one canary at a time: a killed run's goes first
            self.retire_canary(model_name)
        if version not in self.loaded_versions(model_name):
            self._management("POST", f"/models?url={archive.name}&initial_workers={self.workers}&synchronous=true")
        self._wait_for_worker(model_name, version)
        self._smoke_test_beside(model_name, version, {in_service})
        self._route(model_name, in_service, canary)

    def set_canary_weight(self, model_name: str, weight: int) -> None:
        """Give the running canary another share (0-100 percent); the weight is checked before anything changes."""
        current = self._running_canary(model_name)
        self._route(model_name, self._in_service_for_canary(model_name), Canary(current.version, weight))

    def promote_canary(self, model_name: str) -> str:
        """Make the candidate the version in service for every request and retire the old one; return the old one."""
        candidate = self._running_canary(model_name).version
        retired = self._in_service_for_canary(model_name)
        self._management("PUT", f"/models/{model_name}/{candidate}/set-default")
        self._route(model_name, candidate, None)
        for old in set(self.loaded_versions(model_name)) - {candidate}:  # the retired one, and any staged beside
            self._management("DELETE", f"/models/{model_name}/{old}")
        return retired

    def retire_canary(self, model_name: str) -> str:
        """Send every request back to the version in service, then unregister the candidate; return the candidate."""
        candidate = self._running_canary(model_name).version
        self._route(model_name, self._in_service_for_canary(model_name), None)
        with contextlib.suppress(TorchServeError):  # unregistered already by a retirement cut short
            self._management("DELETE", f"/models/{model_name}/{candidate}")
        return candidate

    def _in_service_for_canary(self, model_name: str) -> str:
        in_service = self.served_version(model_name)
        if in_service is None:
            raise TorchServeError(f"{self.inference_url} serves no version of {model_name}: a canary needs one in service")
        if not self.front_door:
            raise TorchServeError("a canary's traffic split is the front door's: this server runs without one")
        return in_service

    def _running_canary(self, model_name: str) -> Canary:
        canary = self.canary(model_name)
        if canary is None:
            raise TorchServeError(f"no canary of {model_name} runs on {self.inference_url}: start one first")
        return canary

    def _route(self, model_name: str, in_service: str, canary: Canary | None) -> None:
        """Record the split, then apply it (nginx reloads without dropping a connection)."""
        if canary is None:
            self._canary_file.unlink(missing_ok=True)
        else:
            with written_atomically(self._canary_file) as partial:
                partial.write_text(json.dumps({"model": model_name, "version": canary.version, "weight": canary.weight}))
        self._front_door((model_name, in_service)).reload()

    def _wait_for_worker(self, model_name: str, version: str) -> None:
        """Wait until a registered version has a READY worker (one registered by a killed deploy may still load)."""
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            (entry,) = self._management("GET", f"/models/{model_name}/{version}")
            if any(worker["status"] == "READY" for worker in entry["workers"]):
                return
            time.sleep(0.5)
        raise TorchServeError(f"version {version} of {model_name} has no ready worker after {self.start_timeout_s:.0f} s")

    def _smoke_test_beside(self, model_name: str, version: str, serving: set[str]) -> None:
        token = self.api_key_file.read_text().strip() if self.api_key_file else None
        result = smoke_test(self.inference_url, model_name, version, token, pinned=True)
        if result.passed:
            return
        self._management("DELETE", f"/models/{model_name}/{version}")
        kept = f"version {', '.join(sorted(serving))} keeps answering" if serving else "nothing else was served"
        raise TorchServeError(
            f"version {version} failed its smoke test before taking traffic, so {kept}: {'; '.join(result.problems)}"
        )

    def loaded_versions(self, model_name: str) -> list[str]:
        """Every version of the model that TorchServe has registered, the default and any beside it."""
        if not self._has_model(model_name):
            return []
        return [entry["modelVersion"] for entry in self._management("GET", f"/models/{model_name}/all")]

    def _has_model(self, model_name: str) -> bool:
        return any(entry["modelName"] == model_name for entry in self.models())

    def served_version(self, model_name: str) -> str | None:
        """The default version of the model, or None when TorchServe is down or does not serve it."""
        if not self.is_up() or not self._has_model(model_name):
            return None
        return next(entry["modelVersion"] for entry in self._management("GET", f"/models/{model_name}"))

    def stop(self) -> None:
        subprocess.run(
            [str(Path(sys.executable).with_name("torchserve")), "--stop"],
            env=self._env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.home,
        )
        deadline = time.monotonic() + 30
        while (self.running() or self.is_up()) and time.monotonic() < deadline:
            time.sleep(0.5)
        self._front_door().stop()

    def predict(self, model_name: str, body: bytes, timeout: float = 60.0) -> dict:
        headers = {"Content-Type": "application/octet-stream"}  # urllib's default (a form) makes TorchServe answer 500
        if self.api_key_file:
            headers["Authorization"] = f"Bearer {self.api_key_file.read_text().strip()}"
        request = urllib.request.Request(
            f"{self.inference_url}/predictions/{model_name}", data=body, method="POST", headers=headers
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)

    def worker_states(self, model_name: str) -> list[dict]:
        """The workers of the model's default version, as the management API describes them."""
        return self._management("GET", f"/models/{model_name}")[0]["workers"]

    def _management(self, method: str, path: str):
        keys = self.keys()
        headers = {"Authorization": f"Bearer {keys['management']}"} if keys else {}
        request = urllib.request.Request(f"{self.management_url}{path}", method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            raise TorchServeError(
                f"TorchServe {method} {path} answered {error.code}: {error.read().decode(errors='replace')}"
            ) from error


def _properties_value(text: str) -> str:
    """A value as a Java properties file must hold it: a backslash is its escape character."""
    return text.replace("\\", "\\\\")


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    completed = subprocess.run(command, capture_output=True, text=True, env=env)
    if completed.returncode != 0:
        raise TorchServeError(f"{Path(command[0]).name} failed: {completed.stderr.strip() or completed.stdout.strip()}")
