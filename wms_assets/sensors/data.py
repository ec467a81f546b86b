"""Re-materialize the lineage when the photos change: one run per new data version."""

import json
from pathlib import Path

import dagster as dg

from wms.versioning import DvcError, directory_md5, pointer_version, stat_fingerprint
from wms_assets.constants import DATASET, LINEAGE_JOB, SOURCE_VERSION
from wms_assets.resources import RawImageSource


@dg.sensor(
    job_name=LINEAGE_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests one lineage run per new content version of the photo folder (run key: that version).",
)
def data_change_sensor(context: dg.SensorEvaluationContext, raw_source: RawImageSource) -> dg.RunRequest | dg.SkipReason:
    if raw_source.dvc_pointer:
        return _pointer_tick(context, Path(raw_source.dvc_pointer))
    return _folder_tick(context, raw_source.folder())


def _pointer_tick(context: dg.SensorEvaluationContext, pointer: Path) -> dg.RunRequest | dg.SkipReason:
    """A .dvc pointer that names a new version (after a new Git commit, say) asks for a run of that version."""
    try:
        version = pointer_version(pointer)
    except DvcError as error:
        return dg.SkipReason(str(error))
    cursor = json.loads(context.cursor) if context.cursor else {}
    known = cursor.get("version") or _last_materialized_version(context.instance)
    context.update_cursor(json.dumps({"version": version}))
    if version == known:
        return dg.SkipReason(f"the pointer {pointer.name} still names data version {version}")
    return dg.RunRequest(run_key=version, tags={"wms/data_version": version})


def _folder_tick(context: dg.SensorEvaluationContext, folder: Path) -> dg.RunRequest | dg.SkipReason:
    """Photos added, changed or removed in the folder make a new content version, which asks for a run."""
    if not (folder / "images").is_dir():
        return dg.SkipReason(f"{folder} has no images/ folder yet: nothing to version")
    cursor = json.loads(context.cursor) if context.cursor else {}
    fingerprint = stat_fingerprint(folder)
    if fingerprint == cursor.get("fingerprint"):
        return dg.SkipReason(f"no file under {folder} changed since data version {cursor['version']}")
    version = directory_md5(folder)
    known = cursor.get("version") or _last_materialized_version(context.instance)
    context.update_cursor(json.dumps({"fingerprint": fingerprint, "version": version}))
    if version == known:
        return dg.SkipReason(f"the files under {folder} were touched but their content is still data version {version}")
    return dg.RunRequest(run_key=version, tags={"wms/data_version": version})


def _last_materialized_version(instance: dg.DagsterInstance) -> str | None:
    """The source version the dataset asset was last materialized from, so a fresh cursor does not rerun it."""
    event = instance.get_latest_materialization_event(DATASET)
    entry = event.asset_materialization.metadata.get(SOURCE_VERSION) if event and event.asset_materialization else None
    return entry.value if entry else None
