"""Retrain when input drift persists: the last N evaluations of the drift check all warned (off by default)."""

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as CheckStatus

from wms_assets.constants import INPUT_DRIFT, INPUT_DRIFT_CHECK, TRAINING_JOB
from wms_assets.resources import DriftPolicy

RETRAIN = {"ops": {"trained_model": {"config": {"reuse_finished_run": False}}}}


@dg.sensor(
    job_name=TRAINING_JOB,
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Requests a retrain when the input-drift check warned on its last `retrain_after` evaluations.",
)
def drift_retrain_sensor(context: dg.SensorEvaluationContext, drift_policy: DriftPolicy) -> dg.RunRequest | dg.SkipReason:
    if not drift_policy.retrain_on_drift:
        return dg.SkipReason("retraining on drift is off (drift_policy.retrain_on_drift)")
    key = dg.AssetCheckKey(INPUT_DRIFT, INPUT_DRIFT_CHECK)
    history = context.instance.event_log_storage.get_asset_check_execution_history(key, limit=drift_policy.retrain_after)
    finished = [record for record in history if record.status in (CheckStatus.SUCCEEDED, CheckStatus.FAILED)]
    if len(finished) < drift_policy.retrain_after:
        return dg.SkipReason(f"{len(finished)} drift evaluations so far, {drift_policy.retrain_after} needed")
    if any(record.status == CheckStatus.SUCCEEDED for record in finished):
        return dg.SkipReason(f"no drift in at least one of the last {drift_policy.retrain_after} evaluations")
    newest = max(record.id for record in finished)
    return dg.RunRequest(run_key=f"drift-{newest}", run_config=RETRAIN, tags={"wms/reason": "input drift persisted"})
