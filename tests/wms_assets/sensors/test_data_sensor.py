import json
import os
import shutil

import dagster as dg
import pytest

from wms.versioning import directory_md5
from wms_assets.constants import DATASET, SOURCE_VERSION
from wms_assets.resources import RawImageSource
from wms_assets.sensors.data import data_change_sensor


@pytest.fixture
def folder(synthetic_root, tmp_path):
    root = tmp_path / "photos"
    shutil.copytree(synthetic_root, root)
    return root


def tick(folder, cursor=None, instance=None):
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=instance or dg.DagsterInstance.ephemeral(),
        resources={"raw_source": RawImageSource(source_dir=str(folder), synthetic_dir=str(folder))},
    )
    return data_change_sensor(context), context.cursor


def test_a_missing_folder_is_skipped_with_the_reason(tmp_path):
    result, _ = tick(tmp_path / "nowhere")
    assert isinstance(result, dg.SkipReason)
    assert "no images/ folder" in result.skip_message


def test_a_new_version_requests_one_run_keyed_by_it(folder):
    result, cursor = tick(folder)
    assert isinstance(result, dg.RunRequest)
    assert result.run_key == directory_md5(folder)
    assert json.loads(cursor)["version"] == result.run_key


def test_an_unchanged_folder_is_skipped(folder):
    _, cursor = tick(folder)
    result, again = tick(folder, cursor)
    assert isinstance(result, dg.SkipReason)
    assert "no file under" in result.skip_message
    assert again == cursor


def test_touched_but_unchanged_files_are_skipped(folder):
    _, cursor = tick(folder)
    victim = next((folder / "images").iterdir())
    os.utime(victim, ns=(1, 1))
    result, _ = tick(folder, cursor)
    assert isinstance(result, dg.SkipReason)
    assert "content is still data version" in result.skip_message


def test_added_and_removed_photos_each_make_a_new_version(folder):
    _, cursor = tick(folder)
    shutil.copyfile(next((folder / "images").iterdir()), folder / "images" / "new.jpg")
    added, cursor = tick(folder, cursor)
    (folder / "images" / "new.jpg").unlink()
    removed, _ = tick(folder, cursor)
    assert isinstance(added, dg.RunRequest) and isinstance(removed, dg.RunRequest)
    assert len({added.run_key, removed.run_key}) == 2


def test_a_fresh_cursor_does_not_rerun_the_version_already_materialized(folder):
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(dg.AssetMaterialization(DATASET, metadata={SOURCE_VERSION: directory_md5(folder)}))
    result, cursor = tick(folder, instance=instance)
    assert isinstance(result, dg.SkipReason)
    assert cursor is not None
