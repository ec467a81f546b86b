"""Retrain when a new commit changes the training code or its configuration (run key: the commit SHA)."""

import dagster as dg

from wms.gitinfo import GitError
from wms_assets.constants import LINEAGE_JOB, TRAINED_MODEL
from wms_assets.resources import CodeCheckout

FORCE_RETRAIN = {"ops": {TRAINED_MODEL.path[-1]: {"config": {"reuse_finished_run": False}}}}


@dg.sensor(
    job_name=LINEAGE_JOB,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a retrain when a new Git commit changes training code or configuration.",
)
def code_change_sensor(context: dg.SensorEvaluationContext, code: CodeCheckout) -> dg.RunRequest | dg.SkipReason:
    try:
        head = code.head()
        if context.cursor is None:
            context.update_cursor(head)
            return dg.SkipReason(f"watching the training code from commit {head[:12]} on")
        if head == context.cursor:
            return dg.SkipReason(f"no new commit since {head[:12]}")
        changes = code.training_changes(context.cursor, head)
    except GitError as error:
        return dg.SkipReason(f"cannot read the Git checkout at {code.path}: {error}")
    context.update_cursor(head)
    if not changes:
        return dg.SkipReason(f"commit {head[:12]} changes no training code or configuration")
    return dg.RunRequest(
        run_key=head, run_config=FORCE_RETRAIN, tags={"wms/git_sha": head, "wms/changed": ",".join(changes)[:200]}
    )
