import json
import os
import shutil

import dagster as dg
import pytest

from wms.data.versioning import directory_md5
from wms.data.watched import folder_source, record_watched
from wms_assets.constants import DATASET, SOURCE_VERSION
from wms_assets.resources import RawImageSource
from wms_assets.sensors.data import data_change_sensor


@pytest.fixture
def folder(synthetic_root, tmp_path):
    root = tmp_path / "photos"
    shutil.copytree(synthetic_root, root)
    return root


def tick(folder, cursor=None, instance=None, source=None):
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=instance or dg.DagsterInstance.ephemeral(),
        resources={"raw_source": source or RawImageSource(source_dir=str(folder), synthetic_dir=str(folder))},
    )
    return data_change_sensor(context), context.cursor


def settled(folder, cursor=None, instance=None, source=None):
    """Two ticks: the first sees the change, the second takes the version once the files stayed as they were."""
    first, cursor = tick(folder, cursor, instance, source)
    assert isinstance(first, dg.SkipReason) and "once they stay as they are" in first.skip_message
    return tick(folder, cursor, instance, source)


def test_a_missing_folder_is_skipped_with_the_reason(tmp_path):
    result, _ = tick(tmp_path / "nowhere")
    assert isinstance(result, dg.SkipReason)
    assert "no images/ folder" in result.skip_message


def test_a_new_version_requests_one_run_keyed_by_it(folder):
    result, cursor = settled(folder)
    assert isinstance(result, dg.RunRequest)
    assert result.run_key == directory_md5(folder)
    assert json.loads(cursor)["version"] == result.run_key
    assert result.tags["wms/reason"] == "new data"


def test_files_still_changing_start_no_run_until_they_settle(folder):
    _, cursor = settled(folder)
    photo = next((folder / "images").iterdir())
    shutil.copyfile(photo, folder / "images" / "copy1.jpg")
    waiting, cursor = tick(folder, cursor)
    shutil.copyfile(photo, folder / "images" / "copy2.jpg")  # the copy goes on between two ticks
    still_waiting, cursor = tick(folder, cursor)
    request, _ = tick(folder, cursor)
    assert isinstance(waiting, dg.SkipReason) and isinstance(still_waiting, dg.SkipReason)
    assert isinstance(request, dg.RunRequest) and request.run_key == directory_md5(folder)


def test_an_unchanged_folder_is_skipped(folder):
    _, cursor = settled(folder)
    result, again = tick(folder, cursor)
    assert isinstance(result, dg.SkipReason)
    assert f"watching {folder}: no file changed" in result.skip_message
    assert again == cursor


def test_touched_but_unchanged_files_are_skipped(folder):
    _, cursor = settled(folder)
    victim = next((folder / "images").iterdir())
    os.utime(victim, ns=(1, 1))
    result, _ = settled(folder, cursor)
    assert isinstance(result, dg.SkipReason)
    assert "content is still data version" in result.skip_message


def test_added_and_removed_photos_each_make_a_new_version(folder):
    _, cursor = settled(folder)
    shutil.copyfile(next((folder / "images").iterdir()), folder / "images" / "new.jpg")
    added, cursor = settled(folder, cursor)
    (folder / "images" / "new.jpg").unlink()
    removed, _ = settled(folder, cursor)
    assert isinstance(added, dg.RunRequest) and isinstance(removed, dg.RunRequest)
    assert len({added.run_key, removed.run_key}) == 2


def test_a_fresh_cursor_does_not_rerun_the_version_already_materialized(folder):
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(dg.AssetMaterialization(DATASET, metadata={SOURCE_VERSION: directory_md5(folder)}))
    result, cursor = settled(folder, instance=instance)
    assert isinstance(result, dg.SkipReason)
    assert cursor is not None


def test_a_folder_that_disappears_is_skipped_and_its_return_does_not_rerun(folder, tmp_path):
    _, cursor = settled(folder)
    shutil.move(folder, tmp_path / "away")
    gone, cursor = tick(folder, cursor)
    shutil.move(tmp_path / "away", folder)
    back, _ = tick(folder, cursor)
    assert "no run until it is back" in gone.skip_message
    assert isinstance(back, dg.SkipReason)


def test_an_unreadable_folder_is_skipped_with_the_reason(folder, monkeypatch):
    def refuse(root):
        raise PermissionError(13, "Permission denied", str(root))

    monkeypatch.setattr("wms_assets.sensors.data.stat_fingerprint", refuse)
    result, cursor = tick(folder)
    assert "cannot read" in result.skip_message and "Permission denied" in result.skip_message
    assert cursor is None


def test_the_recorded_source_is_read_at_every_tick_with_its_training_settings(folder, tmp_path):
    state = tmp_path / "watched.json"
    source = RawImageSource(state_file=str(state), synthetic_dir=str(tmp_path / "synthetic"))
    record_watched(state, folder_source(folder, {"preset": "cpu"}, "test"))
    first, cursor = settled(folder, source=source)
    other = shutil.copytree(folder, tmp_path / "other")  # the same files but one, with the same times
    next((other / "images").iterdir()).unlink()
    record_watched(state, folder_source(other, {"preset": "demo"}, "test"))
    second, _ = settled(other, cursor, source=source)
    assert first.run_config["ops"]["trained_model"]["config"] == {"preset": "cpu"}
    assert first.tags["wms/data_source"] == str(folder.resolve())
    assert second.run_config["ops"]["trained_model"]["config"] == {"preset": "demo"}


def test_a_damaged_record_is_skipped_with_the_reason(tmp_path):
    state = tmp_path / "watched.json"
    state.write_text("not json")
    source = RawImageSource(state_file=str(state), synthetic_dir=str(tmp_path / "synthetic"))
    result, cursor = tick(tmp_path, source=source)
    assert "cannot be read" in result.skip_message and cursor is None
