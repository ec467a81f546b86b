"""Shared fixtures: small synthetic data sets and an exported U-Net made once per session, free ports, and the real
data folder."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
from pathlib import Path

import pytest

from wms.data.synthetic import SyntheticSpec, generate_dataset
from wms.monitoring.prometheus import LocalPrometheus

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "water-meters"


@pytest.fixture(autouse=True)
def signal_handlers_as_found():
    """Each test leaves SIGINT's and SIGTERM's handlers as it found them.

    Dagster's in-process execution (dg.materialize in a test) copies SIGINT's handler onto SIGTERM for the rest of the
    process; where the suite runs in the background (SIGINT ignored) that made the suite ignore SIGTERM, and every
    process it spawned afterwards inherited that.
    """
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in handlers.items():
        if handler is not None and signal.getsignal(signum) != handler:
            signal.signal(signum, handler)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """48 synthetic pairs in the Kaggle layout (read-only: copy before changing)."""
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, SyntheticSpec(count=48, seed=7))
    return root


@pytest.fixture(scope="session")
def untrained_onnx(tmp_path_factory) -> Path:
    """An untrained mobilenet_v2 U-Net of 64-pixel input as ONNX (read-only: copy before changing). Exported once:
    torch.onnx's exporter takes 10 to 20 s of 2 cores for it, and a dozen modules serve one."""
    from wms.training.export import export_onnx
    from wms.training.model import build_unet

    return export_onnx(build_unet("mobilenet_v2"), 64, tmp_path_factory.mktemp("untrained") / "model.onnx", {})


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "images").is_dir():
        pytest.skip(f"the real Water Meters photos are not at {REAL_DATA}")
    return REAL_DATA


def listening_range() -> range:
    """Ports for test servers: below the kernel's ephemeral range, which every outgoing connection draws its local
    port from. A port picked inside it (bind to 0) can be taken by a client connection before the server binds it:
    the front door opens a loopback connection per request, thousands a minute under load."""
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    return range(min(20000, ephemeral_low // 2), ephemeral_low)


PICKER = random.SystemRandom()
"""Not the module-level random generator, which tests seed."""


def free_port_block(count: int, attempts: int = 200) -> int:
    """The first of `count` consecutive free ports on 127.0.0.1, outside the ephemeral range."""
    ports = listening_range()
    for _ in range(attempts):
        first = PICKER.randrange(ports.start, ports.stop - count)
        try:
            with contextlib.ExitStack() as held:
                for port in range(first, first + count):
                    probe = held.enter_context(socket.socket())
                    probe.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports found in {ports}")


def free_port() -> int:
    return free_port_block(1)


@pytest.fixture
def kubeconfig_of_an_absent_cluster(tmp_path) -> Path:
    """A kubeconfig whose API server address has nothing listening (no cluster can run here)."""
    port = free_port()  # nothing listens there
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "eks", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
                "users": [{"name": "ci", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": "eks", "context": {"cluster": "eks", "user": "ci"}}],
                "current-context": "eks",
            }
        )
    )
    return path


def prometheus_scraping(folder: Path, server) -> LocalPrometheus:
    """A real Prometheus, started, scraping a local TorchServe every second (its metrics and the handler's)."""
    prometheus = LocalPrometheus(
        folder,
        ts_metrics_port=server.metrics_port,
        handler_metrics_port=server.handler_metrics_port,
        port=free_port(),
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    prometheus.start()
    return prometheus
