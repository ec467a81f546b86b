"""The one place that decides the environment: WMS_PROFILE picks the resources, assets never read it."""

import os

import dagster as dg
from dagster_aws.s3 import S3PickleIOManager, S3Resource

from wms.core.gitinfo import PROJECT_ROOT
from wms.core.local_state import MODEL_NAME, StateLayout, default_home, default_serve_port
from wms_assets.resources import (
    Alerts,
    CanaryAnalysis,
    CodeCheckout,
    DataQualityPolicy,
    DriftPolicy,
    DvcStorage,
    HelmRelease,
    ImageBuilder,
    LocalModelServer,
    MlflowRegistry,
    PromotionPolicy,
    RawImageSource,
    ServingWorkspace,
    TrainingWorkspace,
)

PROFILE_VARIABLE = "WMS_PROFILE"
POINTER_VARIABLE = "WMS_DVC_POINTER"
IO_BUCKET_VARIABLE = "WMS_DAGSTER_IO_BUCKET"
ALERT_WEBHOOK_VARIABLE = "WMS_ALERT_WEBHOOK"
S3_ENDPOINT_VARIABLE = "WMS_S3_ENDPOINT_URL"
PROMETHEUS_URL_VARIABLE = "WMS_PROMETHEUS_URL"
PROFILES = ("local", "aws")


def current_profile() -> str:
    profile = os.environ.get(PROFILE_VARIABLE, "local")
    if profile not in PROFILES:
        raise ValueError(f"{PROFILE_VARIABLE}={profile!r} is not a profile: use one of {', '.join(PROFILES)}")
    return profile


def watched_image_source(layout: StateLayout) -> RawImageSource:
    """The photos recorded as watched in the local state (`wms data use`), read afresh by every process at each use."""
    return RawImageSource(state_file=str(layout.watched_source), synthetic_dir=str(layout.synthetic_data))


def deployed_image_source(layout: StateLayout) -> RawImageSource:
    """The .dvc pointer of the deployment ($WMS_DVC_POINTER, the same in every pod of the Helm release), else synthetic."""
    return RawImageSource(dvc_pointer=os.environ.get(POINTER_VARIABLE) or None, synthetic_dir=str(layout.synthetic_data))


def resources_for(profile: str, layout: StateLayout | None = None) -> dict[str, dg.ConfigurableResource]:
    layout = layout or StateLayout(default_home())
    return local_resources(layout) if profile == "local" else aws_resources(layout)


def local_resources(layout: StateLayout) -> dict[str, dg.ConfigurableResource]:
    """Everything on this machine, under one state folder: nothing to configure."""
    layout.create()
    return {
        "raw_source": watched_image_source(layout),
        "dvc": DvcStorage(repo_dir=str(layout.dvc_repo), remote_url=str(layout.dvc_remote)),
        "mlflow": MlflowRegistry(
            tracking_uri=layout.mlflow_tracking_uri, model_name=MODEL_NAME, artifact_location=layout.mlflow_artifacts.as_uri()
        ),
        "promotion_policy": PromotionPolicy(),
        "data_quality": DataQualityPolicy(),
        "training_workspace": TrainingWorkspace(checkpoint_root=str(layout.checkpoints)),
        "serving_workspace": ServingWorkspace(root=str(layout.serving)),
        "image_builder": ImageBuilder(),
        "model_server": LocalModelServer.on_port(layout.torchserve_home, default_serve_port()),
        "code": CodeCheckout(path=str(PROJECT_ROOT)),
        "drift_policy": DriftPolicy(),
        "canary": CanaryAnalysis(),
        "alerts": Alerts(webhook_url=os.environ.get(ALERT_WEBHOOK_VARIABLE) or None),
    }


def aws_resources(layout: StateLayout) -> dict[str, dg.ConfigurableResource]:
    """S3 for DVC and for asset values, an MLflow server (backed by RDS MySQL), ECR for images, Helm releases on EKS."""
    prometheus_url = os.environ.get(PROMETHEUS_URL_VARIABLE, "http://kube-prometheus-stack-prometheus.monitoring:9090")
    return {
        "raw_source": deployed_image_source(layout),
        "dvc": DvcStorage(
            repo_dir=str(layout.dvc_repo),
            remote_url=dg.EnvVar("WMS_DVC_REMOTE"),
            endpoint_url=os.environ.get(S3_ENDPOINT_VARIABLE),
        ),
        "mlflow": MlflowRegistry(
            tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI"), model_name=MODEL_NAME, ui_url=dg.EnvVar("MLFLOW_TRACKING_URI")
        ),
        "promotion_policy": PromotionPolicy(),
        "data_quality": DataQualityPolicy(),
        "training_workspace": TrainingWorkspace(checkpoint_root=str(layout.checkpoints)),
        "serving_workspace": ServingWorkspace(root=str(layout.serving)),
        "image_builder": ImageBuilder(builder="buildah", repository=dg.EnvVar("WMS_ECR_REPOSITORY")),
        "model_server": HelmRelease(
            kubeconfig=os.environ.get("KUBECONFIG") or None, api_token=os.environ.get("WMS_API_TOKEN") or None
        ),
        "code": CodeCheckout(path=str(PROJECT_ROOT)),
        "io_manager": s3_io_manager(),
        "drift_policy": DriftPolicy(prometheus_url=prometheus_url, stage="prod"),
        "canary": CanaryAnalysis(enabled=True, prometheus_url=prometheus_url, stage="prod"),
        "alerts": Alerts(webhook_url=os.environ.get(ALERT_WEBHOOK_VARIABLE) or None),
    }


def s3_io_manager() -> S3PickleIOManager:
    """Asset values on S3: with a pod per step (dagster-k8s) and a run per stage, nothing can stay on a local disk."""
    return S3PickleIOManager(
        s3_resource=S3Resource(endpoint_url=os.environ.get(S3_ENDPOINT_VARIABLE) or None),
        s3_bucket=dg.EnvVar(IO_BUCKET_VARIABLE),
        s3_prefix="dagster-io",
    )
