"""Blocking asset checks: what a model version must show before it is promoted and served."""

import dagster as dg

from wms_assets.assets.model import RegisteredVersion, registered_model
from wms_assets.assets.serving import ServingArtifacts, serving_artifacts
from wms_assets.resources import MlflowRegistry, PromotionPolicy


@dg.asset_check(asset=registered_model, blocking=True, description="Mean per-image test IoU at or above the policy's minimum.")
def test_iou_meets_threshold(
    registered_model: RegisteredVersion, promotion_policy: PromotionPolicy, mlflow: MlflowRegistry
) -> dg.AssetCheckResult:
    iou, minimum = registered_model.model.test_iou, promotion_policy.min_test_iou
    passed = iou >= minimum
    mlflow.registry().tag_version(
        registered_model.version, {"gate_test_iou": "passed" if passed else f"failed: {iou:.4f} < {minimum}"}
    )
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "test_mean_iou": dg.MetadataValue.float(iou),
            "minimum": dg.MetadataValue.float(minimum),
            "version": registered_model.version,
        },
    )


@dg.asset_check(
    asset=serving_artifacts, blocking=True, description="ONNX Runtime's probabilities match PyTorch's on test photos."
)
def onnx_matches_pytorch(serving_artifacts: ServingArtifacts, promotion_policy: PromotionPolicy) -> dg.AssetCheckResult:
    gap, tolerance = serving_artifacts.max_probability_gap, promotion_policy.max_onnx_probability_gap
    return dg.AssetCheckResult(
        passed=gap <= tolerance,
        metadata={"max_probability_gap": dg.MetadataValue.float(gap), "tolerance": dg.MetadataValue.float(tolerance)},
    )
