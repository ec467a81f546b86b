"""Retrain when input drift persists: the last N evaluations of the drift check all warned (off by default)."""

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as CheckStatus

from wms.data.watched import WatchedSourceError
from wms_assets.constants import INPUT_DRIFT, INPUT_DRIFT_CHECK, TRAINING_JOB
from wms_assets.resources import DriftPolicy, RawImageSource
from wms_assets.sensors.data import automatic_tags, training_run_config

INPUT_DRIFT_PERSISTED = "input drift persisted"


@dg.sensor(
    job_name=TRAINING_JOB,
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Requests a retrain when the input-drift check warned on its last `retrain_after` evaluations.",
)
def drift_retrain_sensor(
    context: dg.SensorEvaluationContext, drift_policy: DriftPolicy, raw_source: RawImageSource
) -> dg.RunRequest | dg.SkipReason:
    if not drift_policy.retrain_on_drift:
        return dg.SkipReason("retraining on drift is off (drift_policy.retrain_on_drift)")
    key = dg.AssetCheckKey(INPUT_DRIFT, INPUT_DRIFT_CHECK)
    history = context.instance.event_log_storage.get_asset_check_execution_history(key, limit=drift_policy.retrain_after)
    finished = [record for record in history if record.status in (CheckStatus.SUCCEEDED, CheckStatus.FAILED)]
    if len(finished) < drift_policy.retrain_after:
        return dg.SkipReason(f"{len(finished)} drift evaluations so far, {drift_policy.retrain_after} needed")
    if any(record.status == CheckStatus.SUCCEEDED for record in finished):
        return dg.SkipReason(f"no drift in at least one of the last {drift_policy.retrain_after} evaluations")
    try:
        source = raw_source.watched()
    except WatchedSourceError as error:
        return dg.SkipReason(f"input drift persisted, but {error}")
    newest = max(record.id for record in finished)
    run_config = training_run_config(source, reuse_finished_run=False)  # the watched photos' recorded settings
    return dg.RunRequest(run_key=f"drift-{newest}", run_config=run_config, tags=automatic_tags(source, INPUT_DRIFT_PERSISTED))
