"""Names that more than one module uses: asset keys, check names, the job."""

import dagster as dg

LINEAGE_GROUP = "wms"
"""The one asset group: Dagster's lineage view folds each group into a box, and ten assets in one chain read best unfolded."""
STAGE_TAG = "stage"
DATA_STAGE, MODEL_STAGE, SERVING_STAGE, MONITORING_STAGE = (
    {STAGE_TAG: stage} for stage in ("data", "model", "serving", "monitoring")
)
"""Asset tags that say which part of the lineage an asset belongs to (the catalog filters on them)."""

RAW_IMAGES = dg.AssetKey("raw_images")
DATASET = dg.AssetKey("dataset")
TRAINED_MODEL = dg.AssetKey("trained_model")
REGISTERED_MODEL = dg.AssetKey("registered_model")
CHAMPION_MODEL = dg.AssetKey("champion_model")
SERVING_ARTIFACTS = dg.AssetKey("serving_artifacts")
SERVING_IMAGE = dg.AssetKey("serving_image")
STAGING_RELEASE = dg.AssetKey("staging_release")
PROD_RELEASE = dg.AssetKey("prod_release")
"""The production release."""
INPUT_DRIFT = dg.AssetKey("input_drift")
INPUT_DRIFT_CHECK = "input_drift_within_limits"

LINEAGE_JOB = "wms_lineage"
RELEASE_JOB = "wms_release"
TRAINING_JOB = "wms_training"
STAGING_JOB = "wms_staging"
DRIFT_JOB = "wms_drift"
PRODUCTION_JOB = "wms_production"
DATA_FOLDER = "data/water-meters"
"""The tracked data set's folder inside the DVC repository."""
SOURCE_VERSION = "source_version"
"""Metadata key of the dataset asset: the DVC-style hash of the photo folder it was made from."""
RUN_REASON_TAG = "wms/reason"
"""The Dagster run tag that says why a run was started (the sensors set it; the model card records it)."""
PROGRESS_TAG = "wms/progress"
"""The Dagster run tag that says, while a run trains, where the training stands and how long it has left."""
