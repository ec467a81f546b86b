"""Data quality checks on the versioned data set; the blocking ones guard training."""

import dagster as dg

from wms.registry.gates import FAILED, PASSED
from wms_assets.assets.data import VersionedDataset, dataset
from wms_assets.resources import DataQualityPolicy


@dg.asset_check(asset=dataset, blocking=True, description="At least the policy's minimum number of valid pairs.")
def enough_valid_pairs(dataset: VersionedDataset, data_quality: DataQualityPolicy) -> dg.AssetCheckResult:
    count, minimum = sum(len(names) for names in dataset.splits.values()), data_quality.min_valid_pairs
    passed = count >= minimum
    return dg.AssetCheckResult(
        passed=passed,
        description=_verdict(passed, f"{count} valid pairs {'>=' if passed else '<'} the minimum {minimum}"),
        metadata={"valid_pairs": count, "minimum": minimum},
    )


@dg.asset_check(asset=dataset, blocking=True, description="The share of rejected files stays under the policy's ceiling.")
def rejection_rate_under_ceiling(dataset: VersionedDataset, data_quality: DataQualityPolicy) -> dg.AssetCheckResult:
    return _at_most("rejection rate", dataset.validation["rejection_rate"], data_quality.max_rejection_rate)


@dg.asset_check(asset=dataset, blocking=True, description="Masks are binary: almost no pixel lies far from both black and white.")
def masks_are_binary(dataset: VersionedDataset, data_quality: DataQualityPolicy) -> dg.AssetCheckResult:
    worst = dataset.validation["max_ambiguous_mask_fraction"]
    return _at_most("grey share of the worst mask", worst, data_quality.max_ambiguous_mask_fraction)


@dg.asset_check(asset=dataset, description="Train, val and test shares are within the policy's tolerance of 70/15/15.")
def split_proportions_within_tolerance(dataset: VersionedDataset, data_quality: DataQualityPolicy) -> dg.AssetCheckResult:
    total = max(1, sum(len(names) for names in dataset.splits.values()))
    shares = {name: len(names) / total for name, names in dataset.splits.items()}
    expected = {"train": 0.70, "val": 0.15, "test": 0.15}
    worst = max(abs(shares[name] - expected[name]) for name in expected)
    return dg.AssetCheckResult(
        passed=worst <= data_quality.split_tolerance,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            **{f"{name}_share": dg.MetadataValue.float(round(share, 3)) for name, share in shares.items()},
            "tolerance": dg.MetadataValue.float(data_quality.split_tolerance),
        },
    )


@dg.asset_check(asset=dataset, blocking=True, description="No photo, by name or by pixels, is in two splits.")
def no_image_in_two_splits(dataset: VersionedDataset) -> dg.AssetCheckResult:
    seen: dict[str, str] = {}
    shared = []
    for split, names in dataset.splits.items():
        for name in names:
            for key in (f"name:{name}", f"pixels:{dataset.pixel_digests.get(name, name)}"):
                if key in seen and seen[key] != split:
                    shared.append(f"{name} ({seen[key]} and {split})")
                seen.setdefault(key, split)
    summary = f"{len(shared)} photos in two splits, first {shared[0]}" if shared else "every photo is in one split"
    return dg.AssetCheckResult(
        passed=not shared,
        description=_verdict(not shared, summary),
        metadata={"in_two_splits": dg.MetadataValue.json(shared[:50])},
    )


def _at_most(label: str, value: float, ceiling: float) -> dg.AssetCheckResult:
    passed = value <= ceiling
    return dg.AssetCheckResult(
        passed=passed,
        description=_verdict(passed, f"{label} {value:.3f} {'<=' if passed else '>'} the ceiling {ceiling}"),
        metadata={label.replace(" ", "_"): dg.MetadataValue.float(value), "ceiling": dg.MetadataValue.float(ceiling)},
    )


def _verdict(passed: bool, summary: str) -> str:
    """'passed: ...' or 'failed: ...', as the model gates say it."""
    return f"{PASSED if passed else FAILED}: {summary}"
