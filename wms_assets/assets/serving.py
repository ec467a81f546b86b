"""Serving assets: ONNX export and model archive, the serving image, and the release."""

import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from wms.export import export_onnx, max_probability_gap
from wms.image import build_and_push, prepare_build_context
from wms.imaging import read_photo
from wms.torchserve import build_archive
from wms_assets.assets.data import VersionedDataset
from wms_assets.assets.model import RegisteredVersion
from wms_assets.constants import GROUP_SERVING
from wms_assets.resources import ImageBuilder, LocalModelServer, MlflowRegistry, ServingWorkspace

PARITY_PHOTOS = 4


@dataclass(frozen=True)
class ServingArtifacts:
    model_name: str
    version: str
    onnx_path: str
    archive_path: str
    max_probability_gap: float


@dataclass(frozen=True)
class ServingImage:
    context_digest: str
    image_digest: str | None
    artifacts: ServingArtifacts


@dataclass(frozen=True)
class Release:
    url: str
    model_name: str
    version: str


@dg.asset(group_name=GROUP_SERVING, kinds={"onnx", "torchserve"})
def serving_artifacts(
    champion_model: RegisteredVersion, dataset: VersionedDataset, mlflow: MlflowRegistry, serving_workspace: ServingWorkspace
) -> dg.Output[ServingArtifacts]:
    """The champion exported to ONNX (compared with PyTorch on test photos) and packed as a TorchServe archive."""
    name, version, trained = mlflow.model_name, champion_model.version, champion_model.model
    model = mlflow.registry().load_pytorch(f"models:/{name}/{version}")
    # A registered version never changes: its export and archive, once written, are reused.
    onnx_path = serving_workspace.path("models", f"{version}-{trained.run_id}") / "model.onnx"
    if not onnx_path.exists():
        metadata = {"wms.model_name": name, "wms.model_version": version, "wms.data_version": trained.data_version}
        export_onnx(model, trained.image_size, onnx_path, metadata)
    photos = [read_photo(pair.image) for pair in dataset.pairs("test")[:PARITY_PHOTOS]]
    gap = max_probability_gap(model, onnx_path, photos, trained.image_size)
    archive = build_archive(onnx_path, name, version, serving_workspace.path("archives"))
    return dg.Output(
        ServingArtifacts(name, version, str(onnx_path), str(archive), gap),
        metadata={
            "onnx": dg.MetadataValue.path(str(onnx_path)),
            "onnx_megabytes": round(onnx_path.stat().st_size / 2**20, 2),
            "archive": dg.MetadataValue.path(str(archive)),
            "max_probability_gap": dg.MetadataValue.float(gap),
            "model_version": version,
        },
    )


@dg.asset(group_name=GROUP_SERVING, kinds={"docker"})
def serving_image(
    serving_artifacts: ServingArtifacts, image_builder: ImageBuilder, serving_workspace: ServingWorkspace
) -> dg.Output[ServingImage]:
    """The serving image's build context pinned to this model version; built and pushed when a builder is configured."""
    context = prepare_build_context(
        Path(serving_artifacts.archive_path),
        serving_artifacts.model_name,
        serving_artifacts.version,
        serving_workspace.path("image-context") / serving_artifacts.version,
    )
    digest = build_and_push(context, image_builder.repository, image_builder.tls_verify) if image_builder.enabled else None
    note = (
        f"pushed to {image_builder.repository}"
        if digest
        else "no image builder and registry configured on this profile: nothing was built"
    )
    return dg.Output(
        ServingImage(context.digest, digest, serving_artifacts),
        metadata={
            "build_context": dg.MetadataValue.path(str(context.path)),
            "build_context_digest": context.digest,
            "image_digest": str(digest),
            "built": digest is not None,
            "note": note,
        },
    )


@dg.asset(group_name=GROUP_SERVING, kinds={"torchserve"})
def release(context: dg.AssetExecutionContext, serving_image: ServingImage, model_server: LocalModelServer) -> dg.Output[Release]:
    """The model served by TorchServe on this machine; a new champion replaces the running version."""
    artifacts, server = serving_image.artifacts, model_server.server()
    server.model_store.mkdir(parents=True, exist_ok=True)
    archive = server.model_store / Path(artifacts.archive_path).name
    shutil.copyfile(artifacts.archive_path, archive)
    before = server.served_version(artifacts.model_name)
    server.deploy(archive, artifacts.model_name, artifacts.version)
    context.log.info("serving %s version %s (was %s)", artifacts.model_name, artifacts.version, before)
    url = f"{server.inference_url}/predictions/{artifacts.model_name}"
    return dg.Output(
        Release(url, artifacts.model_name, artifacts.version),
        metadata={"url": dg.MetadataValue.url(url), "version": artifacts.version, "previous_version": str(before)},
    )
