"""Serving assets: ONNX export and model archive, and the serving image (the releases are in release.py)."""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from wms.deployment.container_image import build_and_push, prepare_build_context
from wms.registry.model_reference import onnx_of_version
from wms.registry.model_registry import CHAMPION
from wms.serving.torchserve import build_archive
from wms_assets.constants import CHAMPION_MODEL, LINEAGE_GROUP, SERVING_STAGE
from wms_assets.resources import ImageBuilder, MlflowRegistry, ServingWorkspace


@dataclass(frozen=True)
class ServingArtifacts:
    model_name: str
    version: str
    onnx_path: str
    archive_path: str


@dataclass(frozen=True)
class ServingImage:
    context_digest: str
    image_digest: str | None
    artifacts: ServingArtifacts
    reference: str | None = None
    """repository@sha256:...: what releases run (pinned by digest, never a tag); None when nothing was built."""


@dg.asset(group_name=LINEAGE_GROUP, tags=SERVING_STAGE, kinds={"onnx", "torchserve"}, deps=[CHAMPION_MODEL])
def serving_artifacts(mlflow: MlflowRegistry, serving_workspace: ServingWorkspace) -> dg.Output[ServingArtifacts]:
    """The ONNX model of the version under the alias `champion`, packed as a TorchServe archive.

    The alias, not the last promotion, decides what is packed: after `wms rollback` this asset packs the version
    the champion went back to.
    """
    registry = mlflow.registry()
    champion = registry.version_by_alias(CHAMPION)
    if champion is None:
        raise LookupError(f"{mlflow.model_name} has no `champion` version yet: materialize champion_model first")
    info = onnx_of_version(registry, str(champion.version), serving_workspace.path("models"))
    onnx_path = info.onnx_path
    archive = build_archive(
        onnx_path, mlflow.model_name, info.version, serving_workspace.path("archives"), trained_on=info.trained_on or "unknown"
    )
    return dg.Output(
        ServingArtifacts(mlflow.model_name, info.version, str(onnx_path), str(archive)),
        metadata={
            "onnx": dg.MetadataValue.path(str(onnx_path)),
            "onnx_megabytes": round(onnx_path.stat().st_size / 2**20, 2),
            "archive": dg.MetadataValue.path(str(archive)),
            "model_version": info.version,
            "data_version": info.data_version,
            "trained_on": info.trained_on or "unknown",
        },
    )


@dg.asset(group_name=LINEAGE_GROUP, tags=SERVING_STAGE, kinds={"docker"})
def serving_image(
    serving_artifacts: ServingArtifacts, image_builder: ImageBuilder, serving_workspace: ServingWorkspace
) -> dg.Output[ServingImage]:
    """The serving image's build context pinned to this model version; built and pushed when a builder is configured.

    The push's manifest digest pins the image: `reference` (repository@sha256:...) is what the releases deploy.
    """
    context = prepare_build_context(
        Path(serving_artifacts.archive_path),
        serving_artifacts.model_name,
        serving_artifacts.version,
        serving_workspace.path("image-context") / serving_artifacts.version,
    )
    image = build_and_push(context, image_builder.repository, **image_builder.build_options()) if image_builder.enabled else None
    note = (
        f"pushed to {image_builder.repository} as {image.tag}; releases pin {image.digest}"
        if image
        else "no image builder and registry configured on this profile: nothing was built"
    )
    return dg.Output(
        ServingImage(context.digest, image.digest if image else None, serving_artifacts, image.reference if image else None),
        metadata={
            "build_context": dg.MetadataValue.path(str(context.path)),
            "build_context_digest": context.digest,
            "image_digest": str(image.digest if image else None),
            "image_reference": str(image.reference if image else None),
            "image_tag": str(image.tag if image else None),
            "built": image is not None,
            "note": note,
        },
    )
