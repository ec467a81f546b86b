"""Facts about the real Kaggle photos that the code relies on (skipped where the folder is absent)."""

import numpy as np
import pytest

from wms.data.pairs import split_pairs
from wms.data.validation import validate_folder
from wms.inference.imaging import read_mask, read_photo

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def real_report(real_data):
    return validate_folder(real_data)


def test_every_real_pair_is_valid_after_the_exif_turn(real_report):
    assert len(real_report.valid) == 800
    assert real_report.rejected == []
    assert 0.015 < real_report.as_json()["mask_fraction"]["mean"] < 0.035


def test_real_split_proportions(real_report):
    splits = split_pairs(real_report.valid)
    shares = {name: len(pairs) / 800 for name, pairs in splits.items()}
    assert 0.6 < shares["train"] < 0.8
    assert 0.08 < shares["test"] < 0.22


def test_a_turned_real_photo_matches_its_mask(real_data):
    from PIL import Image

    turned = next(p for p in sorted((real_data / "images").iterdir()) if Image.open(p).getexif().get(0x0112) == 6)
    photo, mask = read_photo(turned), read_mask(real_data / "masks" / turned.name)
    assert photo.shape[:2] == mask.shape
    assert 0.001 < mask.mean() < 0.2
    window = photo[mask].mean()
    assert np.isfinite(window)
