import shutil

import pytest
from PIL import Image

from wms.data import DatasetLayoutError, mirror_pairs, scan_pairs, split_of, split_pairs


@pytest.fixture
def dataset_copy(synthetic_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root, ignore=shutil.ignore_patterns("spec.json"))
    return root


def test_scan_finds_every_pair(synthetic_root):
    scan = scan_pairs(synthetic_root)
    assert len(scan.pairs) == 48
    assert scan.rejected == []


def test_scan_rejects_with_reasons_and_keeps_going(dataset_copy):
    images = sorted((dataset_copy / "images").iterdir())
    (dataset_copy / "masks" / images[0].name).unlink()
    images[1].write_bytes(b"not a jpeg")
    Image.new("L", (10, 10)).save(dataset_copy / "masks" / images[2].name, format="JPEG")
    Image.new("L", (10, 10)).save(dataset_copy / "masks" / "orphan.jpg")
    scan = scan_pairs(dataset_copy)
    reasons = {entry["file"]: entry["reason"] for entry in scan.rejected}
    assert reasons[f"images/{images[0].name}"] == "image has no mask"
    assert "cannot decode" in reasons[f"images/{images[1].name}"]
    assert "differs from mask size" in reasons[f"images/{images[2].name}"]
    assert reasons["masks/orphan.jpg"] == "mask has no image"
    assert len(scan.pairs) == 45
    assert images[1].exists(), "rejected files are never deleted"


def test_a_folder_outside_the_layout_is_refused(tmp_path):
    with pytest.raises(DatasetLayoutError, match="images/ and masks/"):
        scan_pairs(tmp_path)


def test_splits_are_stable_when_images_are_added(dataset_copy, tmp_path):
    before = {pair.name: split_of(pair.image) for pair in scan_pairs(dataset_copy).pairs}
    extra = tmp_path / "extra"
    from wms.synthetic import SyntheticSpec, generate_dataset

    generate_dataset(extra, SyntheticSpec(count=5, seed=99))
    for sub in ("images", "masks"):
        for path in (extra / sub).iterdir():
            shutil.copyfile(path, dataset_copy / sub / f"new_{path.name}")
    after = {pair.name: split_of(pair.image) for pair in scan_pairs(dataset_copy).pairs}
    assert {name: after[name] for name in before} == before
    splits = split_pairs(scan_pairs(dataset_copy).pairs)
    assert sum(len(v) for v in splits.values()) == 53
    assert all(splits[name] for name in ("train", "val", "test"))


def test_mirror_copies_changes_and_removes_stale_files(synthetic_root, tmp_path):
    pairs = scan_pairs(synthetic_root).pairs
    target = tmp_path / "mirror"
    assert mirror_pairs(pairs, target) == 96
    assert mirror_pairs(pairs, target) == 0
    assert mirror_pairs(pairs[:-1], target) == 2
    assert len(list((target / "images").iterdir())) == 47
