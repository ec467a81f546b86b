import json
import multiprocessing
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.photos import png_bomb
from tests.unprivileged import as_unprivileged, copy_readable, shared_folder
from wms.data.pairs import DatasetLayoutError, Pair
from wms.data.validation import MaskLimits, _check_all, _spawn_pool, validate_folder
from wms_cli.main import main


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


@pytest.fixture
def odd_entries(synthetic_root, tmp_path):
    """A copy of the synthetic set with entries that are not plain photos: bombs, links and folders."""
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    images = sorted((root / "images").iterdir())
    outside = tmp_path / "elsewhere.jpg"
    images[0].rename(outside)
    images[0].symlink_to(outside)
    kept_aside = root / "originals" / images[1].name
    kept_aside.parent.mkdir()
    images[1].rename(kept_aside)
    images[1].symlink_to(kept_aside)
    images[2].unlink()
    images[2].symlink_to(tmp_path / "gone.jpg")
    images[3].write_bytes(png_bomb(20_000, 20_000))
    images[4].write_bytes(png_bomb(8_000, 7_000))
    images[5].write_bytes(b"GIF89a but not really")
    (root / "images" / "a_folder.jpg").mkdir()
    return root, images


def test_every_entry_gets_a_verdict_and_no_bad_file_stops_the_rest(odd_entries):
    root, images = odd_entries
    report = validate_folder(root, workers=2)
    reasons = {entry["file"]: entry["reason"] for entry in report.rejected}
    assert "outside" in reasons[f"images/{images[0].name}"] and "--allow-outside-links" in reasons[f"images/{images[0].name}"]
    assert reasons[f"images/{images[2].name}"].startswith(f"a link to {images[2].parent.parent.parent}/gone.jpg")
    assert "50-megapixel limit" in reasons[f"images/{images[3].name}"]
    assert "56 megapixels" in reasons[f"images/{images[4].name}"]
    assert (
        reasons[f"images/{images[5].name}"]
        == "not a readable image: not an image format Pillow can read (JPEG, PNG, WebP, BMP, ...)"
    )
    assert reasons["images/a_folder.jpg"].startswith("a folder, not an image file")
    assert not any(" at 0x" in reason for reason in reasons.values()), "no reason shows a Python object"
    valid = {pair.name for pair in report.valid}
    assert images[1].name in valid and len(valid) == 48 - 5, "a link that stays in the folder is a photo"
    assert (root / "images" / "a_folder.jpg").is_dir() and images[0].is_symlink(), "nothing is moved or changed"


def test_links_out_of_the_folder_count_when_allowed(odd_entries):
    root, images = odd_entries
    report = validate_folder(root, workers=1, allow_outside_links=True)
    assert images[0].name in {pair.name for pair in report.valid}
    assert images[2].name in {entry["file"].split("/")[1] for entry in report.rejected}, "a dangling link never counts"


def test_a_mask_entry_that_is_rejected_names_itself_and_its_image(synthetic_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    victim = sorted((root / "masks").iterdir())[0]
    victim.unlink()
    victim.mkdir()
    reasons = {entry["file"]: entry["reason"] for entry in validate_folder(root, workers=1).rejected}
    assert reasons[f"masks/{victim.name}"].startswith("a folder")
    assert reasons[f"images/{victim.name}"] == f"its mask was rejected: see masks/{victim.name}"


def test_an_unreadable_photo_is_rejected_and_the_others_are_checked(synthetic_root):
    """As a user without root's rights (nobody, under setpriv, when the tests run as root)."""
    shared = shared_folder()
    try:
        root = copy_readable(synthetic_root, shared / "data")
        locked = sorted((root / "images").iterdir())[0]
        locked.chmod(0o000)
        command = [str(Path(sys.executable).with_name("wms")), "data", "validate", str(root), "--workers", "1"]
        result = subprocess.run(as_unprivileged(command), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["rejected"] == [
            {"file": f"images/{locked.name}", "reason": f"cannot read {locked.name}: Permission denied"}
        ]
        assert report["valid"] == 47
    finally:
        shutil.rmtree(shared)


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
