"""The Dagster code location: every asset, check and job of WMS, with the resources of the current profile."""

import dagster as dg

from wms_assets.assets import data, data_checks, model, model_checks, monitoring, release, serving
from wms_assets.constants import (
    CHAMPION_MODEL,
    DRIFT_JOB,
    INPUT_DRIFT,
    LINEAGE_JOB,
    PROD_RELEASE,
    PRODUCTION_JOB,
    RELEASE_JOB,
    SERVING_ARTIFACTS,
    SERVING_IMAGE,
    STAGING_JOB,
    STAGING_RELEASE,
    TRAINING_JOB,
)
from wms_assets.kubernetes import TRAINING_RETRY, training_executor
from wms_assets.profiles import current_profile, resources_for
from wms_assets.sensors.code import code_change_sensor
from wms_assets.sensors.data import data_change_sensor
from wms_assets.sensors.drift import drift_retrain_sensor
from wms_assets.sensors.failures import check_warning_alert, run_failure_alert

lineage_job = dg.define_asset_job(
    LINEAGE_JOB,
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(INPUT_DRIFT),
    description="Data to served model: every asset of the lineage, with its checks.",
)


def training_job(profile: str):
    """Data to champion. On the aws profile each step is a Kubernetes Job (the training step's on a GPU node)."""
    on_kubernetes = profile == "aws"
    return dg.define_asset_job(
        TRAINING_JOB,
        selection=dg.AssetSelection.assets(CHAMPION_MODEL).upstream(),
        description="Data to champion: train, register, gate and promote, without packaging or releasing.",
        executor_def=training_executor() if on_kubernetes else None,
        op_retry_policy=TRAINING_RETRY if on_kubernetes else None,
    )


release_job = dg.define_asset_job(
    RELEASE_JOB,
    selection=dg.AssetSelection.assets(SERVING_ARTIFACTS, SERVING_IMAGE, STAGING_RELEASE, PROD_RELEASE),
    description="Package and release (staging, then production) whatever version `champion` points at (after `wms rollback`).",
)
staging_job = dg.define_asset_job(
    STAGING_JOB,
    selection=dg.AssetSelection.assets(SERVING_ARTIFACTS, SERVING_IMAGE, STAGING_RELEASE),
    description="Package the champion, build and push its image, release it to staging and smoke-test it.",
)
drift_job = dg.define_asset_job(
    DRIFT_JOB,
    selection=dg.AssetSelection.assets(INPUT_DRIFT),
    description="Compare the photos the service saw (Prometheus) with the training photos; warn on drift.",
)
production_job = dg.define_asset_job(
    PRODUCTION_JOB,
    selection=dg.AssetSelection.assets(PROD_RELEASE),
    description="Release to production the image that staging answered with (after approval in the deploy workflow).",
)


def build_definitions(resources: dict[str, dg.ConfigurableResource], profile: str = "local") -> dg.Definitions:
    """Locally every run executes its steps in one process: on two cores a process per step spent about 20 s importing
    Dagster, PyTorch and MLflow before each of a lineage run's 17 steps (minutes of a retrain that trains for one)."""
    return dg.Definitions(
        executor=dg.in_process_executor if profile == "local" else None,
        assets=dg.load_assets_from_modules([data, model, serving, release, monitoring]),
        asset_checks=dg.load_asset_checks_from_modules([data_checks, model_checks, release, monitoring]),
        jobs=[lineage_job, training_job(profile), release_job, staging_job, production_job, drift_job],
        sensors=[data_change_sensor, code_change_sensor, drift_retrain_sensor, run_failure_alert, check_warning_alert],
        resources=resources,
    )


defs = build_definitions(resources_for(current_profile()), current_profile())
