import shutil

from wms.data.pairs import mirror_pairs, split_of, split_pairs
from wms.data.synthetic import SyntheticSpec, generate_dataset
from wms.data.validation import validate_folder


def test_splits_are_stable_when_images_are_added(synthetic_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    before = {pair.name: split_of(pair.image) for pair in validate_folder(root, workers=1).valid}
    generate_dataset(tmp_path / "extra", SyntheticSpec(count=5, seed=99))
    for sub in ("images", "masks"):
        for path in (tmp_path / "extra" / sub).iterdir():
            shutil.copyfile(path, root / sub / f"new_{path.name}")
    valid = validate_folder(root, workers=1).valid
    after = {pair.name: split_of(pair.image) for pair in valid}
    assert {name: after[name] for name in before} == before
    splits = split_pairs(valid)
    assert sum(len(v) for v in splits.values()) == 53
    assert all(splits[name] for name in ("train", "val", "test"))


def test_mirror_copies_changes_and_removes_stale_files(synthetic_root, tmp_path):
    pairs = validate_folder(synthetic_root, workers=1).valid
    target = tmp_path / "mirror"
    assert mirror_pairs(pairs, target) == 96
    assert mirror_pairs(pairs, target) == 0
    assert mirror_pairs(pairs[:-1], target) == 2
    assert len(list((target / "images").iterdir())) == 47


def test_known_digests_give_the_same_splits_as_reading_the_photos(synthetic_root):
    report = validate_folder(synthetic_root, workers=1)
    assert split_pairs(report.valid, report.file_digests) == split_pairs(report.valid)
