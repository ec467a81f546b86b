"""Blocking asset checks: the gates a model version must pass before it becomes champion.

The gate logic lives in wms.registry.gates; each check measures, applies its gate, records the outcome on the registered
version (tag `gate.<name>`) and reports it to Dagster. A failed check stops `champion_model` and everything
downstream, so the champion and the running release stay as they were.
"""

import tempfile
from pathlib import Path

import dagster as dg

from wms.inference.evaluation import score_as_served
from wms.inference.imaging import read_photo
from wms.inference.predict import OnnxBackend, Segmenter, onnx_segmenter
from wms.registry.gates import (
    GateResult,
    latency_gate,
    measure_latency_ms,
    onnx_parity_gate,
    paired_comparison,
    regression_gate,
    scores_gate,
)
from wms.registry.model_reference import onnx_of_version
from wms.registry.model_registry import CHAMPION
from wms.training.export import max_probability_gap
from wms_assets.assets.data import VersionedDataset
from wms_assets.assets.model import RegisteredVersion, registered_model
from wms_assets.resources import MlflowRegistry, PromotionPolicy

PARITY_PHOTOS = 4


def gate(description: str, reads_dataset: bool = True):
    """A blocking check on `registered_model`; most gates also read the test split of `dataset`."""
    extra = {"dataset": dg.AssetIn("dataset")} if reads_dataset else None
    return dg.asset_check(asset=registered_model, blocking=True, additional_ins=extra, description=description)


def _report(result: GateResult, version: RegisteredVersion, mlflow: MlflowRegistry, limits: dict) -> dg.AssetCheckResult:
    registry = mlflow.registry()
    registry.tag_version(version.version, {result.tag_key: result.tag})
    registry.write_model_card(version.version)
    metadata = {key: dg.MetadataValue.float(float(value)) for key, value in {**result.measurements, **limits}.items()}
    return dg.AssetCheckResult(passed=result.passed, description=result.tag, metadata={**metadata, "version": version.version})


@gate(
    "Mean per-image test IoU and Dice of the exported model, each photo read as the service reads it, at or above the minimums.",
    reads_dataset=False,
)
def test_scores_meet_minimums(
    registered_model: RegisteredVersion, promotion_policy: PromotionPolicy, mlflow: MlflowRegistry
) -> dg.AssetCheckResult:
    model, policy = registered_model.model, promotion_policy
    result = scores_gate(model.test_iou, model.test_dice, policy.min_test_iou, policy.min_test_dice)
    return _report(result, registered_model, mlflow, {"min_iou": policy.min_test_iou, "min_dice": policy.min_test_dice})


@gate(
    "Not worse than the current champion: both scored photo by photo on this test split as the service reads the "
    "photos, and the lower end of the bootstrap interval of the mean IoU difference at or above minus the margin."
)
def no_regression_against_champion(
    registered_model: RegisteredVersion, dataset: VersionedDataset, promotion_policy: PromotionPolicy, mlflow: MlflowRegistry
) -> dg.AssetCheckResult:
    registry, policy, comparison = mlflow.registry(), promotion_policy, None
    champion = registry.version_by_alias(CHAMPION)
    if champion is not None and str(champion.version) != registered_model.version:
        test = dataset.pairs("test")
        with tempfile.TemporaryDirectory() as scratch:
            challenger_ious, champion_ious = (
                score_as_served(onnx_segmenter(onnx_of_version(registry, version, Path(scratch)).onnx_path), test).iou_by_name()
                for version in (registered_model.version, str(champion.version))
            )
        comparison = paired_comparison(challenger_ious, champion_ious, policy.regression_confidence)
    champion_name = str(champion.version) if champion else None
    result = regression_gate(comparison, policy.regression_margin, champion_name)
    limits = {"margin": policy.regression_margin, "confidence": policy.regression_confidence}
    return _report(result, registered_model, mlflow, limits)


@gate("ONNX Runtime's window probabilities match PyTorch's on test photos.")
def onnx_matches_pytorch(
    registered_model: RegisteredVersion, dataset: VersionedDataset, promotion_policy: PromotionPolicy, mlflow: MlflowRegistry
) -> dg.AssetCheckResult:
    registry, trained = mlflow.registry(), registered_model.model
    photos = [read_photo(pair.image) for pair in dataset.pairs("test")[:PARITY_PHOTOS]]
    with tempfile.TemporaryDirectory() as scratch:
        onnx_path = registry.download(trained.onnx_uri, Path(scratch))
        gap = max_probability_gap(registry.load_pytorch(trained.model_uri), onnx_path, photos, trained.image_size)
    result = onnx_parity_gate(gap, promotion_policy.max_onnx_probability_gap)
    return _report(result, registered_model, mlflow, {"tolerance": promotion_policy.max_onnx_probability_gap})


@gate("p95 CPU latency of the exported ONNX model, photo to mask, within the budget.")
def onnx_latency_within_budget(
    registered_model: RegisteredVersion, dataset: VersionedDataset, promotion_policy: PromotionPolicy, mlflow: MlflowRegistry
) -> dg.AssetCheckResult:
    registry, trained, policy = mlflow.registry(), registered_model.model, promotion_policy
    photo = read_photo(dataset.pairs("test")[0].image)
    with tempfile.TemporaryDirectory() as scratch:
        onnx_path = registry.download(trained.onnx_uri, Path(scratch))
        segmenter = Segmenter(OnnxBackend(onnx_path, threads=policy.latency_threads), trained.image_size)
        p50, p95 = measure_latency_ms(segmenter, photo)
    result = latency_gate(p95, p50, policy.max_p95_latency_ms)
    return _report(result, registered_model, mlflow, {"budget_ms": policy.max_p95_latency_ms, "threads": policy.latency_threads})
