"""Releases: staging gets each champion's serving image, production gets it once staging answered, at once or as a
canary judged on Prometheus's figures (wms.monitoring.canary).

On the aws profile each stage is a Helm release (helm/wms-serving) in its namespace on EKS; on the local profile
both stages are the one TorchServe on 127.0.0.1, where staging loads the version beside the one in service.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import dagster as dg

from wms.monitoring.canary import RollOut, roll_out
from wms.registry.model_registry import CHAMPION
from wms_assets.assets.serving import ServingImage
from wms_assets.constants import LINEAGE_GROUP, SERVING_STAGE, STAGING_RELEASE
from wms_assets.resources import CanaryAnalysis, CanarySplit, Deployment, MlflowRegistry, ReleaseTarget


@dataclass(frozen=True)
class Release:
    url: str
    """Where photos go: <service>/predictions/<model>."""
    model_name: str
    version: str
    stage: str
    service_url: str
    image_reference: str | None = None


@dg.asset(group_name=LINEAGE_GROUP, tags=SERVING_STAGE, kinds={"helm", "kubernetes"})
def staging_release(
    context: dg.AssetExecutionContext, serving_image: ServingImage, model_server: ReleaseTarget
) -> dg.Output[Release]:
    """The champion's serving image released to staging (namespace model-staging on EKS), then smoke-tested."""
    return _release("staging", context, serving_image, model_server)


@dg.asset_check(asset=STAGING_RELEASE, blocking=True)
def staging_release_answers(staging_release: Release, model_server: ReleaseTarget) -> dg.AssetCheckResult:
    """Staging answers /ping and turns a meter photo into a mask with the released version: only then does prod follow."""
    deployment = Deployment("staging", staging_release.service_url, None)
    result = model_server.smoke_test(deployment, staging_release.model_name, staging_release.version)
    return dg.AssetCheckResult(
        passed=result.passed,
        description="; ".join(result.problems) or f"version {result.served_version} answered a meter photo",
        metadata={"url": staging_release.service_url, "served_version": str(result.served_version)},
    )


@dg.asset(group_name=LINEAGE_GROUP, tags=SERVING_STAGE, kinds={"helm", "torchserve"}, deps=[STAGING_RELEASE])
def prod_release(
    context: dg.AssetExecutionContext,
    serving_image: ServingImage,
    model_server: ReleaseTarget,
    canary: CanaryAnalysis,
    mlflow: MlflowRegistry,
) -> dg.Output[Release]:
    """The production release (namespace model-prod on EKS): the image staging answered with. With the canary policy
    enabled and another version in service, a canary: promoted at the last step, else rolled back and failed."""
    artifacts = serving_image.artifacts
    in_service = model_server.in_service(artifacts.model_name)
    if not canary.enabled or in_service in (None, artifacts.version):
        return _release("prod", context, serving_image, model_server)
    return _canary_release(context, serving_image, in_service, model_server, canary, mlflow)


def _canary_release(
    context: dg.AssetExecutionContext,
    image: ServingImage,
    in_service: str,
    target: ReleaseTarget,
    canary: CanaryAnalysis,
    mlflow: MlflowRegistry,
) -> dg.Output[Release]:
    artifacts = image.artifacts
    model, candidate = artifacts.model_name, artifacts.version
    policy = canary.policy()
    canary.check_prometheus(model, in_service)  # before anything changes: the version in service keeps all traffic
    deployment = target.start_canary(model, candidate, Path(artifacts.archive_path), image.reference)
    report = roll_out(CanarySplit(target, model), canary.reader(model), candidate, in_service, policy, context.log.info)
    if not report.passed:
        _roll_back(context, report, model, target, mlflow)
    retired = target.promote_canary(model)
    steps = " -> ".join(f"{step.weight} %" for step in report.steps)
    mlflow.registry().record_served(candidate, retired, f"canary passed at {steps}: {report.last.verdict.reason}")
    url = f"{deployment.url}/predictions/{model}"
    return dg.Output(
        Release(url, model, candidate, "prod", deployment.url, image.reference),
        metadata={
            "stage": "prod",
            "url": dg.MetadataValue.url(url),
            "version": candidate,
            "previous_version": retired,
            "image": str(image.reference),
            "canary": dg.MetadataValue.md(report.table()),
        },
    )


def _roll_back(
    context: dg.AssetExecutionContext, report: RollOut, model: str, target: ReleaseTarget, mlflow: MlflowRegistry
) -> NoReturn:
    """All traffic back to the version in service, the candidate retired, `champion` back to the version before it;
    then the run fails with the figures."""
    target.retire_canary(model)
    step = report.last
    reason = f"canary of version {report.candidate} failed at {step.weight} %: {step.verdict.reason}"
    registry = mlflow.registry()
    champion = registry.version_by_alias(CHAMPION)
    moved = ""
    if champion is not None and str(champion.version) == report.candidate:
        event = registry.rollback(reason)
        moved = f"; champion moved back to version {event.version}"
    context.log.error(reason + moved)
    raise dg.Failure(
        description=f"{reason}; version {report.in_service} keeps serving{moved}",
        metadata={"canary": dg.MetadataValue.md(report.table()), "in_service": report.in_service},
    )


def _release(stage: str, context: dg.AssetExecutionContext, image: ServingImage, target: ReleaseTarget) -> dg.Output[Release]:
    artifacts = image.artifacts
    deployment = target.deploy(stage, artifacts.model_name, artifacts.version, Path(artifacts.archive_path), image.reference)
    context.log.info(
        "%s serves %s version %s (was %s)", stage, artifacts.model_name, artifacts.version, deployment.previous_version
    )
    url = f"{deployment.url}/predictions/{artifacts.model_name}"
    return dg.Output(
        Release(url, artifacts.model_name, artifacts.version, stage, deployment.url, image.reference),
        metadata={
            "stage": stage,
            "url": dg.MetadataValue.url(url),
            "version": artifacts.version,
            "previous_version": str(deployment.previous_version),
            "image": str(image.reference),
            "helm_revision": str(deployment.revision),
        },
    )
