import hashlib

from PIL import Image

from wms.data.synthetic import SyntheticSpec, generate_dataset
from wms.inference.imaging import EXIF_ORIENTATION_TAG, read_mask, read_photo


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.jpg"))}


def test_same_seed_gives_the_same_files(tmp_path):
    generate_dataset(tmp_path / "a", SyntheticSpec(count=6, seed=3))
    generate_dataset(tmp_path / "b", SyntheticSpec(count=6, seed=3))
    generate_dataset(tmp_path / "c", SyntheticSpec(count=6, seed=4))
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_kaggle_layout_with_aligned_masks_and_some_exif_turns(synthetic_root):
    images = sorted((synthetic_root / "images").iterdir())
    assert len(images) == 48
    assert all(name.name.startswith("id_") and "_value_" in name.name for name in images)
    turned = [p for p in images if Image.open(p).getexif().get(EXIF_ORIENTATION_TAG) == 6]
    assert turned, "some photos must carry an EXIF orientation"
    for path in turned[:3] + images[:3]:
        mask = read_mask(synthetic_root / "masks" / path.name)
        assert read_photo(path).shape[:2] == mask.shape
        assert 0.005 < mask.mean() < 0.2
