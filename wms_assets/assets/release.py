"""Releases: staging gets each champion's serving image, production gets it once staging answered.

On the aws profile each stage is a Helm release (helm/wms-serving) in its namespace on EKS; on the local profile
both stages are the one TorchServe on 127.0.0.1.
"""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from wms_assets.assets.serving import ServingImage
from wms_assets.constants import LINEAGE_GROUP, SERVING_STAGE, STAGING_RELEASE
from wms_assets.resources import Deployment, ReleaseTarget


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
def release(context: dg.AssetExecutionContext, serving_image: ServingImage, model_server: ReleaseTarget) -> dg.Output[Release]:
    """The production release (namespace model-prod on EKS): the image staging answered with."""
    return _release("prod", context, serving_image, model_server)


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
