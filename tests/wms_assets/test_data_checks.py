"""The data quality checks, invoked directly on hand-made data sets."""

from wms_assets.assets.data import VersionedDataset
from wms_assets.assets.data_checks import (
    enough_valid_pairs,
    masks_are_binary,
    no_image_in_two_splits,
    rejection_rate_under_ceiling,
    split_proportions_within_tolerance,
)
from wms_assets.resources import DataQualityPolicy


def make_dataset(train=70, val=15, test=15, rejection_rate=0.0, grey=0.0, digests=None) -> VersionedDataset:
    splits = {
        "train": [f"train_{i}.jpg" for i in range(train)],
        "val": [f"val_{i}.jpg" for i in range(val)],
        "test": [f"test_{i}.jpg" for i in range(test)],
    }
    validation = {"rejection_rate": rejection_rate, "max_ambiguous_mask_fraction": grey}
    return VersionedDataset("/data", "abc", splits, validation, digests or {})


POLICY = DataQualityPolicy()


def test_enough_valid_pairs():
    assert enough_valid_pairs(make_dataset(), POLICY).passed
    assert not enough_valid_pairs(make_dataset(train=10, val=2, test=2), POLICY).passed


def test_rejection_rate_under_ceiling():
    assert rejection_rate_under_ceiling(make_dataset(rejection_rate=0.05), POLICY).passed
    assert not rejection_rate_under_ceiling(make_dataset(rejection_rate=0.3), POLICY).passed


def test_masks_are_binary():
    assert masks_are_binary(make_dataset(grey=0.001), POLICY).passed
    assert not masks_are_binary(make_dataset(grey=0.2), POLICY).passed


def test_split_proportions_within_tolerance():
    assert split_proportions_within_tolerance(make_dataset(), POLICY).passed
    assert not split_proportions_within_tolerance(make_dataset(train=95, val=3, test=2), POLICY).passed


def test_no_image_in_two_splits_compares_pixels_too():
    assert no_image_in_two_splits(make_dataset(digests={"train_0.jpg": "a", "test_0.jpg": "b"})).passed
    result = no_image_in_two_splits(make_dataset(digests={"train_0.jpg": "same", "test_0.jpg": "same"}))
    assert not result.passed
    assert "test_0.jpg (train and test)" in result.metadata["in_two_splits"].value
