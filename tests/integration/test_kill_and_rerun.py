"""`wms run` killed with SIGKILL inside each stage, then run again: the state converges.

One state folder, one chain of real `wms run` processes on the local profile. Each is held inside the next stage
(tests/killpoints.py) and its whole process group is killed with SIGKILL, as an OOM kill or a lost machine would;
the next run starts from what the kill left. The TorchServe and nginx that a run started live in sessions of their
own, as they do for a user, and survive. After the last kill a plain `wms run` must succeed and leave: one model
version per training, every MLflow run finished, the champion's history right, the served version the champion,
every DVC object whole and pushed, and no half-written file. Then new photos arrive, and the chain goes on through
the second promotion and the switch of the served version.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port_block
from tests.models import LEARNING_SCHEDULE
from wms.core.local_state import MODEL_NAME, SERVE_PORT_VARIABLE, StateLayout
from wms.data.synthetic import SyntheticSpec, generate_dataset
from wms.data.versioning import STALE_UPLOAD_AGE_S
from wms.registry.model_registry import ARCHIVED_TAG, CHALLENGER, CHAMPION, ModelRegistry
from wms.serving.smoke import sample_photo
from wms.serving.torchserve import LocalTorchServe
from wms_assets.constants import DATA_FOLDER

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3600)]
ROOT = Path(__file__).resolve().parents[2]
WMS = Path(sys.executable).with_name("wms")
HANG_GUARD_S = 1800
"""Only so that a run that hangs ends the test: no run comes near it."""
TRAINING = [f"--set={key}={value}" for key, value in {**LEARNING_SCHEDULE, "fine_tune": "2:0.0005:96"}.items()]
"""Every run of the chain trains with these (the same settings, or a run would not take up the killed one's
checkpoints): a training that learns the synthetic windows in seconds, not the demo preset's minutes, so that the
default gates pass it, and a fine-tuning gentle enough for the no-regression gate."""


class Chain:
    """Runs of `wms run` against one state folder, each killed at a point or left to finish."""

    def __init__(self, folder: Path) -> None:
        self.layout = StateLayout(folder / "state")
        self.markers, self.logs = folder / "markers", folder / "logs"
        self.markers.mkdir()
        self.logs.mkdir()
        passed_on = {key: value for key, value in os.environ.items() if not key.startswith(("WMS_", "DAGSTER_"))}
        self.env = passed_on | {
            "WMS_HOME": str(self.layout.home),
            SERVE_PORT_VARIABLE: str(free_port_block(8)),
            "WMS_KILLPOINT_DIR": str(self.markers),
        }
        self.server = LocalTorchServe.on_port(self.layout.torchserve_home, int(self.env[SERVE_PORT_VARIABLE]))
        self.registry = ModelRegistry(self.layout.mlflow_tracking_uri, MODEL_NAME)
        self.runs = 0

    def killed_at(self, point: str, *arguments: str) -> dict:
        """Run `wms run ARGUMENTS` until it is held at `point`, kill -9 its process group; return what it was doing."""
        marker = self.markers / f"{point}.json"
        marker.unlink(missing_ok=True)  # an earlier run's, held at the same point
        self.runs += 1
        with open(self.log(), "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.killpoints", point, "--", "run", *arguments, *TRAINING],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + HANG_GUARD_S
            while not marker.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"wms run did not reach {point} (exit {process.poll()}):\n{self.log().read_text()[-4000:]}")
                time.sleep(0.2)
            return json.loads(marker.read_text())
        finally:
            with contextlib.suppress(ProcessLookupError):  # it ended by itself: the failure above says how
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def completes(self, *arguments: str) -> str:
        self.runs += 1
        with open(self.log(), "wb") as log:
            completed = subprocess.run(
                [str(WMS), "run", *arguments, *TRAINING],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=HANG_GUARD_S,
            )
        output = self.log().read_text(errors="replace")
        assert completed.returncode == 0, output[-4000:]
        return output

    def log(self) -> Path:
        """The output of the latest run."""
        return self.logs / f"run-{self.runs}.log"

    def stop_serving(self) -> None:
        self.server.stop()


@pytest.fixture
def chain(tmp_path):
    chain = Chain(tmp_path)
    yield chain
    chain.stop_serving()


def versions(registry: ModelRegistry) -> list[str]:
    return sorted(str(version.version) for version in registry.client.search_model_versions(f"name = '{MODEL_NAME}'"))


def run_statuses(registry: ModelRegistry) -> list[str]:
    experiment = registry.client.get_experiment_by_name(registry.experiment_name)
    return sorted(run.info.status for run in registry.client.search_runs([experiment.experiment_id]))


def half_written_files(home: Path) -> list[Path]:
    """Partial files of ours and DVC's temporary uploads, anywhere in the state."""
    return sorted(path for path in home.rglob("*") if path.name.endswith((".partial", ".tmp")) and path.is_file())


def damaged_dvc_objects(remote: Path) -> list[str]:
    """Objects of the DVC remote whose content does not hash to their name (content-addressed: files/md5/ab/cdef...)."""
    damaged = []
    for path in (remote / "files" / "md5").glob("*/*"):
        expected = path.parent.name + path.name.removesuffix(".dir")
        if hashlib.md5(path.read_bytes()).hexdigest() != expected:
            damaged.append(str(path.relative_to(remote)))
    return damaged


def dvc_in_sync(layout: StateLayout) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--cloud", f"{DATA_FOLDER}.dvc"],
        cwd=layout.dvc_repo,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def same_photos(left: Path, right: Path) -> bool:
    """The same files under images/ and masks/, byte for byte."""

    def files(root: Path) -> list[Path]:
        return sorted(path.relative_to(root) for sub in ("images", "masks") for path in (root / sub).iterdir())

    names = files(left)
    return names == files(right) and all((left / name).read_bytes() == (right / name).read_bytes() for name in names)


def torchserve_processes(home: Path) -> list[psutil.Process]:
    """TorchServe's Java frontends and nginx masters of this home (a start retried twice would show two)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if str(home) in line and ("org.pytorch.serve.ModelServer" in line or "nginx: master" in line or "nginx -p" in line):
            found.append(process)
    return found


def assert_converged(chain: Chain, champion: str, all_versions: list[str]) -> None:
    layout, registry, server = chain.layout, chain.registry, chain.server
    assert versions(registry) == all_versions, "one model version per training, none twice"
    assert run_statuses(registry) == ["FINISHED"] * len(all_versions), "a killed training was finished in its own run"
    assert str(registry.version_by_alias(CHAMPION).version) == champion
    history = registry.champion_history()
    assert [(event.action, event.version) for event in history] == [("promote", v) for v in all_versions]
    assert [event.previous for event in history] == [None, *all_versions[:-1]]
    assert server.served_version(MODEL_NAME) == champion
    assert server.loaded_versions(MODEL_NAME) == [champion], "only the champion is loaded"
    assert server.predict(MODEL_NAME, sample_photo())["model_version"] == champion
    assert len(torchserve_processes(layout.torchserve_home)) == 2, "one TorchServe and one nginx, none left over"
    assert "in sync" in dvc_in_sync(layout)
    assert damaged_dvc_objects(layout.dvc_remote) == []
    left = [path for path in layout.checkpoints.rglob("*") if path.is_file()]
    assert left == [], "checkpoints and a fine-tuning's start weights go once the MLflow run has finished"
    assert half_written_files(layout.home) == []


def test_wms_run_killed_inside_each_stage_converges_when_run_again(chain, tmp_path):
    layout, registry = chain.layout, chain.registry
    data = layout.dvc_repo / DATA_FOLDER

    held = chain.killed_at("data-copy")
    assert held["written"] < held["size"] and Path(held["file"]).name.startswith("."), held
    assert not Path(held["file"]).with_name(Path(held["file"]).name[1:].removesuffix(".partial")).exists()

    held = chain.killed_at("dvc-push")
    upload = Path(held["file"])
    assert upload.name.endswith(".tmp") and upload.exists(), "held with an upload written to its temporary name"
    an_hour_ago = time.time() - STALE_UPLOAD_AGE_S - 60
    os.utime(upload, (an_hour_ago, an_hour_ago))  # left that long: the next push knows it for a killed one's

    chain.killed_at("training")
    assert not upload.exists(), "the killed push's temporary upload was pruned"
    assert sorted(path.name for path in layout.checkpoints.rglob("*last.pt*")) == [".last.pt.partial", "last.pt"]
    assert same_photos(layout.synthetic_data, data), "the copy the kill cut short was finished"

    chain.killed_at("registration")
    assert versions(registry) == ["1"] and registry.version_by_alias(CHALLENGER) is None

    chain.killed_at("promotion")
    assert str(registry.version_by_alias(CHAMPION).version) == "1" and registry.champion_history() == []

    held = chain.killed_at("packaging")
    assert not Path(held["file"]).with_name(Path(held["file"]).name[1:].removesuffix(".partial")).exists()

    chain.killed_at("release-start")
    assert chain.server.running() and not chain.server.is_up(), "TorchServe started, the front door not yet"

    chain.completes()
    assert_converged(chain, champion="1", all_versions=["1"])
    assert "cut short" in registry.champion_history()[0].reason

    more_photos = tmp_path / "more-photos"
    generate_dataset(more_photos, SyntheticSpec(count=200))  # the first 160 are the photos trained on so far
    chain.killed_at("promotion", "--data", str(more_photos))
    assert str(registry.version_by_alias(CHAMPION).version) == "2" and len(registry.champion_history()) == 1

    chain.killed_at("release-switch")
    assert chain.server.predict(MODEL_NAME, sample_photo())["model_version"] == "1", "version 1 answers meanwhile"

    chain.completes()
    assert_converged(chain, champion="2", all_versions=["1", "2"])
    assert ARCHIVED_TAG in registry.client.get_model_version(MODEL_NAME, "1").tags
    assert same_photos(more_photos, data)
    shutil.rmtree(more_photos)
