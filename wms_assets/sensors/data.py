"""Re-materialize the lineage when the watched photos change: one run per new data version.

The watched source is read afresh at every tick (`wms data use` records it), so the sensor, the UI and `wms run`
agree on it. A folder must look the same on two ticks in a row before its version is taken: a copy in progress
never starts a run on half of the photos.
"""

import json
from pathlib import Path

import dagster as dg

from wms.data.versioning import DvcError, directory_md5, pointer_version, stat_fingerprint
from wms.data.watched import POINTER, WatchedSource, WatchedSourceError
from wms_assets.constants import DATASET, LINEAGE_JOB, RUN_REASON_TAG, SOURCE_VERSION, TRAINED_MODEL
from wms_assets.resources import RawImageSource

NEW_DATA = "new data"


def training_run_config(source: WatchedSource, **config) -> dict:
    """The run config of an automatic run: the recorded training settings, plus these."""
    return {"ops": {TRAINED_MODEL.path[-1]: {"config": {**source.training, **config}}}}


def automatic_tags(source: WatchedSource, reason: str, **tags: str) -> dict[str, str]:
    return {RUN_REASON_TAG: reason, "wms/data_source": source.label[:200], **tags}


@dg.sensor(
    job_name=LINEAGE_JOB,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests one lineage run per new content version of the watched photos (`wms data show` names "
    "them; run key: that version). Each tick's message says which folder or pointer it read.",
)
def data_change_sensor(context: dg.SensorEvaluationContext, raw_source: RawImageSource) -> dg.RunRequest | dg.SkipReason:
    try:
        source = raw_source.watched()
    except WatchedSourceError as error:
        return dg.SkipReason(str(error))
    if source.kind == POINTER:
        return _pointer_tick(context, source)
    return _folder_tick(context, source, raw_source.folder(source))


def _pointer_tick(context: dg.SensorEvaluationContext, source: WatchedSource) -> dg.RunRequest | dg.SkipReason:
    """A .dvc pointer that names a new version (after a new Git commit, say) asks for a run of that version."""
    pointer = Path(source.location)
    try:
        version = pointer_version(pointer)
    except DvcError as error:
        return dg.SkipReason(str(error))
    cursor = json.loads(context.cursor) if context.cursor else {}
    known = cursor.get("version") or _last_materialized_version(context.instance)
    context.update_cursor(json.dumps({"version": version}))
    if version == known:
        return dg.SkipReason(f"the pointer {pointer} still names data version {version}")
    tags = automatic_tags(source, NEW_DATA, **{"wms/data_version": version})
    return dg.RunRequest(run_key=version, run_config=training_run_config(source), tags=tags)


def _folder_tick(context: dg.SensorEvaluationContext, source: WatchedSource, folder: Path) -> dg.RunRequest | dg.SkipReason:
    """Photos added, changed or removed in the folder make a new content version, which asks for a run."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    if cursor.get("folder", str(folder)) != str(folder):  # another source was recorded: its files are all new to us
        cursor = {"version": cursor.get("version")}
    try:
        if not (folder / "images").is_dir():
            return dg.SkipReason(f"{folder} has no images/ folder (missing, moved or unmounted?): no run until it is back")
        fingerprint = stat_fingerprint(folder)
        if fingerprint == cursor.get("fingerprint"):
            return dg.SkipReason(f"watching {folder}: no file changed since data version {cursor['version']}")
        if fingerprint != cursor.get("pending"):
            context.update_cursor(json.dumps({**cursor, "folder": str(folder), "pending": fingerprint}))
            return dg.SkipReason(f"files under {folder} changed: the version is taken once they stay as they are for a tick")
        version = directory_md5(folder)
    except OSError as error:
        return dg.SkipReason(f"cannot read {folder} ({error}): no run until it is readable again")
    known = cursor.get("version") or _last_materialized_version(context.instance)
    context.update_cursor(json.dumps({"folder": str(folder), "fingerprint": fingerprint, "version": version}))
    if version == known:
        return dg.SkipReason(f"the files under {folder} were touched but their content is still data version {version}")
    tags = automatic_tags(source, NEW_DATA, **{"wms/data_version": version})
    return dg.RunRequest(run_key=version, run_config=training_run_config(source), tags=tags)


def _last_materialized_version(instance: dg.DagsterInstance) -> str | None:
    """The source version the dataset asset was last materialized from, so a fresh cursor does not rerun it."""
    event = instance.get_latest_materialization_event(DATASET)
    entry = event.asset_materialization.metadata.get(SOURCE_VERSION) if event and event.asset_materialization else None
    return entry.value if entry else None
