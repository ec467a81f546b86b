"""New photos to a new served version by itself: the real webserver and daemon, the sensors, TorchServe.

A champion is served first (one in-process run on the same instance); then photos are added to the watched folder
and nothing else is done: the daemon's data sensor must start exactly one run, which fine-tunes the champion and
serves the new version while the old one keeps answering. Touching files, and restarting the daemon, start nothing.
"""

import importlib.util
import os
import shutil
import threading
import time
import urllib.error

import dagster as dg
import pytest

from tests.conftest import free_port
from tests.dagsterdeployment import DagsterDeployment, write_workspace
from tests.integration.conftest import free_server_ports
from wms.core.local_state import MODEL_NAME, StateLayout
from wms.data.synthetic import SyntheticSpec, generate_dataset
from wms.data.versioning import directory_md5
from wms.data.watched import folder_source, record_watched
from wms.registry.model_registry import ModelRegistry
from wms_assets.run import materialize_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TRAINING = {"cycles": "1:0.002:64", "fine_tune": "1:0.001:64"}
SENSOR = "data_change_sensor"
CODE_LOCATION = """
from pathlib import Path

from wms.core.local_state import StateLayout
from wms_assets.definitions import build_definitions
from wms_assets.profiles import local_resources
from wms_assets.resources import LocalModelServer, PromotionPolicy

layout = StateLayout(Path({home!r}))
resources = local_resources(layout)
# one-epoch models of 64-pixel photos score near zero and differ by noise: only the gates' plumbing is under test here
resources["promotion_policy"] = PromotionPolicy(min_test_iou=0.0, min_test_dice=0.0, regression_margin=0.99)
resources["model_server"] = LocalModelServer(home=str(layout.torchserve_home), **{ports!r})
defs = build_definitions(resources)
"""


class Prober(threading.Thread):
    """Sends a photo to the inference URL every second and keeps every answer's version, or the error."""

    def __init__(self, server, photo: bytes) -> None:
        super().__init__(daemon=True)
        self.server, self.photo = server, photo
        self.versions: list[str] = []
        self.errors: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.versions.append(self.server.predict(MODEL_NAME, self.photo)["model_version"])
            except urllib.error.HTTPError as error:  # the body says which layer answered (front door, TorchServe)
                self.errors.append(f"{error}: {error.read().decode(errors='replace').strip()}")
            except (urllib.error.URLError, OSError, ValueError) as error:
                self.errors.append(str(error))
            time.sleep(1)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    root = tmp_path_factory.mktemp("daemon-loop")
    layout = StateLayout(root / "state")
    layout.create()
    photos = root / "photos"
    generate_dataset(photos, SyntheticSpec(count=40, seed=1))
    record_watched(layout.watched_source, folder_source(photos, TRAINING, "test"))
    ports = free_server_ports()
    workspace = write_workspace(root, CODE_LOCATION.format(home=str(layout.home), ports=ports))
    spec = importlib.util.spec_from_file_location("daemon_loop_definitions", root / "definitions.py")
    code = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(code)
    server = code.defs.resources["model_server"].server()
    deployment = DagsterDeployment(layout.dagster_home, workspace, free_port(), root / "logs")
    try:
        with dg.DagsterInstance.from_config(str(layout.dagster_home)) as instance:
            first = materialize_job(TRAINING, instance, code.defs)
        assert first.success, first.summary()
        deployment.start("webserver")
        deployment.start("daemon")
        yield deployment, layout, photos, server
    finally:
        deployment.stop_all()
        server.stop()


def sensor_runs(deployment: DagsterDeployment) -> list[dict]:
    """The runs the sensors started (the champion's in-process run is on the same instance)."""
    return [run for run in deployment.runs() if "dagster/sensor_name" in run["tags"]]


def ticks_since(deployment: DagsterDeployment, since: float) -> list[dict]:
    return [tick for tick in deployment.ticks(SENSOR) if tick["timestamp"] > since]


def test_the_served_champion_is_not_run_again_when_the_daemon_starts(deployment):
    dagster, _, _, _ = deployment
    started = time.time()
    dagster.wait_for(lambda: len(ticks_since(dagster, started)) >= 2, 240, "two data sensor ticks")
    assert sensor_runs(dagster) == []
    ticks = [tick for tick in ticks_since(dagster, started) if tick["status"] != "STARTED"]  # STARTED: in flight
    assert all(tick["status"] == "SKIPPED" for tick in ticks), ticks


def test_new_photos_make_one_run_and_the_new_version_answers_without_a_gap(deployment):
    dagster, layout, photos, server = deployment
    prober = Prober(server, next((photos / "images").iterdir()).read_bytes())
    prober.start()
    extra = layout.home / "extra"
    generate_dataset(extra, SyntheticSpec(count=10, seed=123))
    for sub in ("images", "masks"):
        for path in (extra / sub).iterdir():
            shutil.copyfile(path, photos / sub / f"added_{path.name}")
    try:
        dagster.wait_for(lambda: "2" in prober.versions, 900, "version 2 to answer at the inference URL")
    finally:
        prober.done.set()
        prober.join()
    finished = dagster.wait_for(
        lambda: [run for run in sensor_runs(dagster) if run["status"] not in ("QUEUED", "STARTING", "STARTED")],
        300,
        "the run to finish",
    )
    assert finished[0]["status"] == "SUCCESS", dagster.tail("daemon")
    runs = sensor_runs(dagster)
    assert len(runs) == 1, runs
    assert runs[0]["tags"]["wms/data_version"] == directory_md5(photos) == runs[0]["tags"]["dagster/run_key"]
    assert runs[0]["tags"]["wms/reason"] == "new data"
    assert prober.errors == []
    assert prober.versions[0] == "1" and set(prober.versions) == {"1", "2"}
    assert "1" not in prober.versions[prober.versions.index("2") :]
    version = ModelRegistry(layout.mlflow_tracking_uri, MODEL_NAME).client.get_model_version(MODEL_NAME, "2")
    assert version.tags["start"].startswith("fine-tuned from version 1")
    assert version.tags["trained_on"] == str(photos.resolve())


def test_touched_files_and_a_restarted_daemon_start_nothing(deployment):
    dagster, _, photos, _ = deployment
    touched = time.time()
    for path in (photos / "images").iterdir():
        os.utime(path)
    dagster.wait_for(
        lambda: any("content is still" in (tick["skipReason"] or "") for tick in ticks_since(dagster, touched)),
        240,
        "a tick that sees the touched files unchanged",
    )
    dagster.stop("daemon")
    dagster.start("daemon")
    restarted = time.time()
    dagster.wait_for(lambda: len(ticks_since(dagster, restarted)) >= 2, 240, "two ticks after the restart")
    assert len(sensor_runs(dagster)) == 1
