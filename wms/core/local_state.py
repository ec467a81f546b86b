"""Where the local profile keeps its state: one git-ignored folder, `.wms/` in the project by default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_VARIABLE = "WMS_HOME"
SERVE_PORT_VARIABLE = "WMS_SERVE_PORT"
"""The first of the local TorchServe's eight ports (inference, through nginx): where `wms run` releases and where
`wms serve start` serves when no --port is given."""
DEFAULT_SERVE_PORT = 8080
MODEL_NAME = "wms-unet"
DAGSTER_SETTINGS = """telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1  # one lineage run at a time: two trainings on one machine's cores both crawl
"""
"""The local Dagster instance's dagster.yaml; runs the daemon launches queue behind one another."""
EARLIER_SETTINGS = ("telemetry:\n  enabled: false\n",)


def default_serve_port() -> int:
    """$WMS_SERVE_PORT, or 8080."""
    value = os.environ.get(SERVE_PORT_VARIABLE, str(DEFAULT_SERVE_PORT))
    if not value.isdigit() or not 1 <= int(value) <= 65535 - 7:
        raise ValueError(f"{SERVE_PORT_VARIABLE}={value!r} is not a port for the first of eight ports: use 1 to 65528")
    return int(value)


def default_home() -> Path:
    """$WMS_HOME, or .wms in the current folder (the project root when run as the README says)."""
    return Path(os.environ.get(HOME_VARIABLE, Path.cwd() / ".wms")).resolve()


@dataclass(frozen=True)
class StateLayout:
    home: Path

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def synthetic_data(self) -> Path:
        return self.home / "data" / "synthetic"

    @property
    def watched_source(self) -> Path:
        """The record of the photo source and training settings that the automatic runs use (wms/data/watched.py)."""
        return self.home / "watched.json"

    @property
    def dvc_repo(self) -> Path:
        return self.home / "dvc"

    @property
    def dvc_remote(self) -> Path:
        return self.home / "dvc-remote"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.mlflow_dir / "artifacts"

    @property
    def serving(self) -> Path:
        return self.home / "serving"

    @property
    def checkpoints(self) -> Path:
        return self.home / "checkpoints"

    @property
    def torchserve_home(self) -> Path:
        return self.home / "torchserve"

    def create(self) -> None:
        for folder in (self.dagster_home, self.mlflow_dir, self.serving, self.torchserve_home):
            folder.mkdir(parents=True, exist_ok=True)
        settings = self.dagster_home / "dagster.yaml"
        if not settings.exists() or settings.read_text() in EARLIER_SETTINGS:
            settings.write_text(DAGSTER_SETTINGS)
