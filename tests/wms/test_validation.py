import json
import multiprocessing
import shutil
import signal

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from wms.cli import main
from wms.data import DatasetLayoutError, Pair
from wms.validation import MaskLimits, _check_all, _spawn_pool, validate_folder


@pytest.fixture
def broken(synthetic_root, tmp_path):
    """A copy of the synthetic set with one file broken in each way the validator knows."""
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    images = sorted((root / "images").iterdir())
    (root / "masks" / images[0].name).unlink()
    images[1].write_bytes(b"not a jpeg")
    Image.new("L", (10, 10)).save(root / "masks" / images[2].name, format="JPEG")
    Image.new("L", (10, 10)).save(root / "masks" / "orphan.jpg")
    images[3].write_bytes(b"")
    Image.new("RGB", Image.open(root / "masks" / images[4].name).size, (255, 0, 0)).save(root / "masks" / images[4].name)
    size = Image.open(root / "masks" / images[5].name).size
    Image.new("L", size, 0).save(root / "masks" / images[5].name)
    shutil.copyfile(images[10], root / "images" / "zz_copy.jpg")
    shutil.copyfile(root / "masks" / images[10].name, root / "masks" / "zz_copy.jpg")
    pixels = np.asarray(Image.open(images[11]))
    Image.fromarray(pixels).save(root / "images" / "zz_same_pixels.png")
    shutil.copyfile(root / "masks" / images[11].name, root / "masks" / "zz_same_pixels.png")
    return root, images


def test_every_broken_file_is_rejected_with_its_reason(broken):
    root, images = broken
    report = validate_folder(root, workers=2)
    reasons = {entry["file"]: entry["reason"] for entry in report.rejected}
    assert reasons[f"images/{images[0].name}"].startswith("image has no mask")
    assert reasons["masks/orphan.jpg"] == "mask has no image"
    assert reasons[f"images/{images[1].name}"].startswith("not a readable image")
    assert "differs from mask size" in reasons[f"images/{images[2].name}"]
    assert reasons[f"images/{images[3].name}"] == "image file is empty"
    assert "not single-channel" in reasons[f"images/{images[4].name}"]
    assert reasons[f"images/{images[5].name}"].startswith("mask is empty")
    assert reasons["images/zz_copy.jpg"] == f"duplicate of images/{images[10].name} (same bytes)"
    assert "same pixels" in reasons["images/zz_same_pixels.png"]
    assert len(report.valid) + len(report.rejected) == 48 + 2 + 1
    assert images[1].exists() and (root / "masks" / "orphan.jpg").exists(), "rejected files stay where they are"


def test_a_mask_that_is_nearly_all_white_is_rejected(synthetic_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    victim = sorted((root / "masks").iterdir())[0]
    Image.new("L", Image.open(victim).size, 255).save(victim, format="JPEG")
    reasons = {entry["file"]: entry["reason"] for entry in validate_folder(root, workers=1).rejected}
    assert reasons[f"images/{victim.name}"].startswith("mask is nearly all white")


def test_missing_folders_are_refused_clearly(tmp_path):
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        validate_folder(tmp_path / "nowhere")
    with pytest.raises(DatasetLayoutError, match="images/ and masks/"):
        validate_folder(tmp_path)


def test_cli_prints_the_report_as_json(broken):
    root, _ = broken
    result = CliRunner().invoke(main, ["data", "validate", str(root)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid"] == 51 - len(report["rejected"])
    assert {"file", "reason"} <= set(report["rejected"][0])
    assert report["max_ambiguous_mask_fraction"] < 0.01


def test_cli_exits_non_zero_for_a_missing_folder(tmp_path):
    result = CliRunner().invoke(main, ["data", "validate", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_checks_abandoned_halfway_leave_no_worker_behind(synthetic_root):
    pairs = [Pair(image, synthetic_root / "masks" / image.name) for image in sorted((synthetic_root / "images").iterdir())]
    checks = _check_all(pairs[:16], MaskLimits(), workers=2)
    next(checks)
    checks.close()
    assert multiprocessing.active_children() == []


def _sigterm_disposition(_) -> int:
    return int(signal.getsignal(signal.SIGTERM))


@pytest.fixture
def sigterm_ignored():
    """This process ignores SIGTERM, as it does once Dagster has run in a background job (SIGINT ignored there)."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_workers_can_be_terminated_where_this_process_ignores_sigterm(sigterm_ignored):
    pool = _spawn_pool(2)
    try:
        assert pool.map(_sigterm_disposition, range(2)) == [int(signal.SIG_DFL)] * 2
    finally:
        pool.terminate()
        pool.join()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN


def test_checks_abandoned_halfway_leave_no_worker_behind_where_sigterm_is_ignored(synthetic_root, sigterm_ignored):
    pairs = [Pair(image, synthetic_root / "masks" / image.name) for image in sorted((synthetic_root / "images").iterdir())]
    checks = _check_all(pairs[:16], MaskLimits(), workers=2)
    next(checks)
    checks.close()
    assert multiprocessing.active_children() == []
