"""Screenshots for docs/images: the page to try a photo, the Dagster UI on the trained model, MLflow's champion page.

Run after `make demo` (a champion, served on 127.0.0.1): `.venv/bin/python scripts/screenshots.py`. It starts the
Dagster webserver on a free port and the MLflow UI on the address the Dagster metadata links to (its images come
from there) unless one answers there already, drives Debian's Chromium with Playwright, and stops what it started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from wms.core.local_state import MODEL_NAME, StateLayout, default_home
from wms.core.project import PROJECT_ROOT
from wms.registry.model_registry import CHAMPION, ModelRegistry
from wms.serving.smoke import sample_photo
from wms.serving.torchserve import LocalTorchServe
from wms_assets.resources import MlflowRegistry

OUTPUT = PROJECT_ROOT / "docs" / "images"
REAL_PHOTOS = PROJECT_ROOT.parent / "shared" / "data" / "water-meters" / "images"
VIEWPORT = {"width": 1280, "height": 900}
WIDE = {"width": 1680, "height": 1000}
MLFLOW_UI = MlflowRegistry.model_fields["ui_url"].default
"""The MLflow UI the local profile's Dagster metadata links to: its images load from there."""
SHOTS = ("page.jpg", "dagster-lineage.png", "dagster-trained-model.png", "mlflow-runs.png", "mlflow-champion-version.png")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def background(command: list[str], url: str, ready_path: str, env: dict[str, str], log: Path, reuse: bool = False):
    """A process serving `url` (once `url + ready_path` answers), stopped when the block ends; with `reuse`, one that
    answers there already is used as it is."""
    if reuse and answers(url + ready_path):
        yield url
        return
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not answers(url + ready_path):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{command[0]} did not answer at {url}: see {log}")
            time.sleep(1)
        yield url
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=60)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def dismiss(page, control) -> None:
    """Click what a first visit shows, if it shows up."""
    from playwright.sync_api import TimeoutError as NotShown

    try:
        control.first.click(timeout=10_000)
        page.wait_for_timeout(1000)
    except NotShown:
        pass


def a_photo(folder: Path) -> Path:
    real = sorted(REAL_PHOTOS.glob("*.jpg"))[:1] if REAL_PHOTOS.is_dir() else []
    if real:
        return real[0]
    path = folder / "meter.jpg"
    path.write_bytes(sample_photo())
    return path


def main() -> None:
    layout = StateLayout(default_home())
    server = LocalTorchServe.of_home(layout.torchserve_home)
    champion = ModelRegistry(layout.mlflow_tracking_uri, MODEL_NAME).version_by_alias(CHAMPION)
    if champion is None or not server.is_up():
        raise SystemExit("no champion served: run `make demo` first")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    logs = layout.home / "screenshots"
    logs.mkdir(exist_ok=True)
    venv = Path(sys.executable).parent
    env = {**os.environ, "DAGSTER_HOME": str(layout.dagster_home)}
    dagster_port = free_port()
    dagster = [
        str(venv / "dagster-webserver"),
        "-w",
        str(PROJECT_ROOT / "workspace.yaml"),
        "-h",
        "127.0.0.1",
        "-p",
        str(dagster_port),
    ]
    mlflow_ui = urlsplit(MLFLOW_UI)
    mlflow = [str(venv / "mlflow"), "ui", "--backend-store-uri", layout.mlflow_tracking_uri]
    mlflow += ["-h", mlflow_ui.hostname, "-p", str(mlflow_ui.port)]
    from playwright.sync_api import sync_playwright

    with (
        background(dagster, f"http://127.0.0.1:{dagster_port}", "/server_info", env, logs / "dagster.log") as dagster_url,
        background(mlflow, MLFLOW_UI, "/health", env, logs / "mlflow.log", reuse=True) as mlflow_url,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium")
        page = browser.new_page(viewport=VIEWPORT)

        page.goto(f"{server.inference_url}/")
        page.set_input_files("#photo", str(a_photo(logs)))
        page.wait_for_selector("#answer:not([hidden])")
        page.screenshot(path=str(OUTPUT / "page.jpg"), full_page=True, quality=80)  # a photo: JPEG is a third

        page.goto(f"{dagster_url}/asset-groups")
        page.get_by_text("trained_model").first.wait_for(timeout=60_000)
        dismiss(page, page.get_by_role("button", name="Skip"))  # the first visit's newsletter dialog
        page.wait_for_timeout(2000)
        page.screenshot(path=str(OUTPUT / "dagster-lineage.png"))

        page.set_viewport_size(WIDE)  # the metadata cell of the sheet is a third of the window's width
        page.goto(f"{dagster_url}/assets/trained_model")
        page.get_by_role("img", name="worst test cases, from MLflow").first.wait_for(timeout=60_000)
        page.wait_for_timeout(2000)
        page.get_by_text("mlflow_run", exact=True).first.evaluate("row => row.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(OUTPUT / "dagster-trained-model.png"))

        page.set_viewport_size(VIEWPORT)
        page.goto(ModelRegistry(layout.mlflow_tracking_uri, MODEL_NAME).runs_by_score_url(mlflow_url))
        page.get_by_text("test_mean_iou").first.wait_for(timeout=60_000)
        dismiss(page, page.get_by_role("button", name="Close"))  # the assistant panel
        page.screenshot(path=str(OUTPUT / "mlflow-runs.png"))

        page.goto(f"{mlflow_url}/#/models/{MODEL_NAME}/versions/{champion.version}")
        page.get_by_text(f"Version {champion.version}").first.wait_for(timeout=60_000)
        dismiss(page, page.get_by_text("Model training", exact=True))  # the classic ML view, not GenAI's
        dismiss(page, page.get_by_role("button", name="Close"))
        page.screenshot(path=str(OUTPUT / "mlflow-champion-version.png"), full_page=True)
        browser.close()
    for name in SHOTS:
        print(OUTPUT / name)


if __name__ == "__main__":
    main()
