"""Retrain when a new commit changes the training code or its configuration (run key: the commit SHA)."""

import dagster as dg

from wms.core.gitinfo import GitError
from wms.data.watched import WatchedSourceError
from wms.training.warm_start import SCRATCH
from wms_assets.constants import LINEAGE_JOB
from wms_assets.resources import CodeCheckout, RawImageSource
from wms_assets.sensors.data import automatic_tags, training_run_config

CODE_CHANGE = "training code changed"


@dg.sensor(
    job_name=LINEAGE_JOB,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a retrain from scratch, on the watched photos, when a new Git commit changes training code "
    "or configuration.",
)
def code_change_sensor(
    context: dg.SensorEvaluationContext, code: CodeCheckout, raw_source: RawImageSource
) -> dg.RunRequest | dg.SkipReason:
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
    if not changes:
        context.update_cursor(head)
        return dg.SkipReason(f"commit {head[:12]} changes no training code or configuration")
    try:
        source = raw_source.watched()
    except WatchedSourceError as error:
        return dg.SkipReason(f"commit {head[:12]} changes training code, but {error}")
    context.update_cursor(head)
    run_config = training_run_config(source, start=SCRATCH, reuse_finished_run=False)
    tags = automatic_tags(source, CODE_CHANGE, **{"wms/git_sha": head, "wms/changed": ",".join(changes)[:200]})
    return dg.RunRequest(run_key=head, run_config=run_config, tags=tags)
