"""The page at / in a real browser (Debian's Chromium, headless, driven by Playwright): a photo in, its window drawn
over it; a text file in, the service's error shown."""

import io
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REAL_DATA, free_port, free_port_block
from tests.models import centre_window_onnx
from wms.serving.smoke import sample_photo
from wms.serving.torchserve import LocalTorchServe, build_archive

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = "wms-unet"
OUTLINE = (255, 45, 122)
"""The outline's colour on the page (serving/web/app.js)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("page")
    onnx_path = centre_window_onnx(folder / "model.onnx")
    served = replace(LocalTorchServe.on_port(folder / "home", free_port_block(8)), worker_port=free_port())
    served.start(build_archive(onnx_path, MODEL, "7", served.model_store, trained_on="synthetic"))
    yield served
    served.stop()


def chromium() -> str:
    found = shutil.which("chromium")
    if not found:
        pytest.fail("Debian's chromium is not installed: run scripts/install.sh")
    return found


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium())
        page = browser.new_page(viewport={"width": 1000, "height": 1200})
        page.goto(f"{server.inference_url}/")
        yield page
        browser.close()


def a_photo(folder: Path) -> Path:
    """A real meter photo when the data set is beside the project, else a synthetic one."""
    real = sorted((REAL_DATA / "images").glob("*.jpg"))[:1] if (REAL_DATA / "images").is_dir() else []
    if real:
        return real[0]
    path = folder / "meter.jpg"
    path.write_bytes(sample_photo())
    return path


def test_a_photo_comes_back_with_its_window_drawn_over_it(page, tmp_path):
    photo = a_photo(tmp_path)
    page.set_input_files("#photo", str(photo))
    page.wait_for_selector("#answer:not([hidden])")
    assert page.text_content("#version") == "7"
    assert page.text_content("#trained-on") == "synthetic"
    assert "synthetic" in page.text_content("#notice")
    shot = np.asarray(Image.open(io.BytesIO(page.locator("#overlay").screenshot())).convert("RGB")).astype(int)
    outline = np.abs(shot - OUTLINE).sum(axis=2) < 40
    rows, cols = np.nonzero(outline)
    assert outline.sum() > 100, "the window's outline is drawn"
    height, width = outline.shape
    assert abs(rows.mean() / height - 0.5) < 0.1 and abs(cols.mean() / width - 0.5) < 0.1, "around the middle"
    (tmp_path / "page.png").write_bytes(page.screenshot(full_page=True))


def test_a_text_file_gets_the_service_s_error_and_no_picture(page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    page.set_input_files("#photo", str(notes))
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error").startswith("415 wrong_content_type: ")
    assert page.is_hidden("#answer")
