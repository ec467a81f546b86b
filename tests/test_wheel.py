"""WMS installed as a wheel, outside the checkout: the wheel is built and installed into a fresh virtual environment
beside the locked dependencies, and from a folder that is not the checkout `wms --help` runs and `wms serve start` serves
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
    """A fresh virtual environment holding the wheel of this checkout and the locked dependencies.

    The dependencies are this suite's own environment (built from requirements.lock), linked file by file (copied
    where links cannot cross file systems) rather than installed again (7 GB, minutes), with the checkout's editable
    install taken out: the wheel goes in with pip, and `pip check` says that what the wheel requires is there."""
    folder = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(folder)
    venv = folder / "venv"
    if subprocess.run(["cp", "-al", sys.prefix, str(venv)], capture_output=True).returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)  # another file system than the environment's: no links across
        subprocess.run(["cp", "-a", sys.prefix, str(venv)], check=True)
    take_out_the_editable_install(venv)
    point_scripts_at(venv, Path(sys.prefix))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "-q", "--no-deps", str(wheel)], check=True, cwd=folder)
    checked = subprocess.run([*pip, "check"], cwd=folder, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return folder


def build_wheel(folder: Path) -> Path:
    source = folder / "source"  # a copy: setuptools builds in the source's build/, which would keep files since removed
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(source)]
    subprocess.run([*command, "-w", str(folder / "dist")], check=True, cwd=folder)
    (wheel,) = (folder / "dist").glob("wms-*.whl")
    return wheel


def take_out_the_editable_install(venv: Path) -> None:
    """Unlinks the links to the checkout (the linked copy shares its files with the suite's environment)."""
    (site_packages,) = venv.glob("lib/python*/site-packages")
    for path in [*site_packages.glob("__editable__*wms*"), *site_packages.glob("wms-*.dist-info")]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def point_scripts_at(venv: Path, original: Path) -> None:
    """The console scripts name their interpreter by its path: the copy's, not the original environment's."""
    for script in (venv / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        text = script.read_bytes()
        if text.startswith(b"#!") and str(original).encode() in text.split(b"\n", 1)[0]:
            script.unlink()  # a new file: writing into the link would change the original's too
            script.write_bytes(text.replace(str(original).encode(), str(venv).encode(), 1))
            script.chmod(0o755)


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
