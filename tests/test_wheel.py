"""WMS installed as a wheel, outside the checkout: the wheel is built, installed with its locked dependencies into a
fresh virtual environment, and from a folder that is not the checkout `wms --help` runs and `wms serve start` serves
an exported model that answers a photo. Its files (the front door's template, the page, the presets) come from the
wheel's package data, not from the checkout."""

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, free_port_block
from tests.models import centre_window_onnx
from wms.serving.smoke import sample_photo

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment holding the wheel of this checkout and the locked dependencies."""
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "source"  # a copy: setuptools builds in the source's build/, which would keep files since removed
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(source),
            "-w",
            str(folder / "dist"),
        ],
        check=True,
        cwd=folder,
    )
    (wheel,) = (folder / "dist").glob("wms-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True)
    pip = [str(folder / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-c", str(ROOT / "requirements.lock"), str(wheel)], check=True, cwd=folder)
    return folder


def wms(installed: Path, *arguments: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(installed / "venv" / "bin" / "wms"), *arguments],
        cwd=installed,
        env={**os.environ, "WMS_HOME": str(installed / "state"), **environment},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    python = installed / "venv" / "bin" / "python"
    found = subprocess.run(
        [str(python), "-c", "import wms, serving; print(wms.__file__); print(serving.__file__)"],
        cwd=installed,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(path.startswith(str(installed / "venv")) for path in found), found
    assert wms(installed, "--help").returncode == 0
    assert "demo" in wms(installed, "run", "--help").stdout
    refused = wms(installed, "monitor", "start", "--port", str(free_port()))
    assert refused.returncode == 2 and "no Prometheus rules at" in refused.stderr, "the rules live in a checkout: passed in"


def test_the_installed_wheel_serves_an_exported_model_outside_the_checkout(installed):
    model = centre_window_onnx(installed / "model.onnx")
    port = free_port_block(8)
    started = wms(installed, "serve", "start", "--model", str(model), "--port", str(port))
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip().splitlines()[-1]
        request = urllib.request.Request(url, data=sample_photo(), headers={"Content-Type": "image/jpeg"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        assert answer["mask_png_base64"] and answer["model_version"].startswith("file-")
        with urllib.request.urlopen(url.split("/predictions/")[0] + "/", timeout=10) as page:
            assert "<html" in page.read().decode().lower(), "the page to try a photo, from the wheel's package data"
    finally:
        wms(installed, "serve", "stop")
