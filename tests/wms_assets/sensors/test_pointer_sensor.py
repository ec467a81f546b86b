"""The data sensor on a .dvc pointer committed in Git, with a real DVC repository and a local remote."""

import shutil
import subprocess

import dagster as dg
import pytest

from wms.data.versioning import directory_md5, pointer_version, run_dvc
from wms_assets.resources import RawImageSource
from wms_assets.sensors.data import data_change_sensor

pytestmark = pytest.mark.integration


def git(repo, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo, check=True, capture_output=True
    )


def publish(repo, message):
    """dvc add, dvc push and a Git commit of the pointer: what a data engineer does to publish a version."""
    run_dvc(repo, "local", "add", "data/meters")
    run_dvc(repo, "local", "push", "data/meters.dvc")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


@pytest.fixture
def checkout(tmp_path, synthetic_root):
    repo = tmp_path / "checkout"
    repo.mkdir()
    git(repo, "init", "-q")
    run_dvc(repo, "local", "init", "--quiet")
    run_dvc(repo, "local", "remote", "add", "--default", "storage", str(tmp_path / "remote"))
    for sub in ("images", "masks"):
        (repo / "data" / "meters" / sub).mkdir(parents=True)
        for path in sorted((synthetic_root / sub).iterdir())[:12]:
            shutil.copyfile(path, repo / "data" / "meters" / sub / path.name)
    publish(repo, "first data")
    return repo


def tick(pointer, cursor=None):
    source = RawImageSource(dvc_pointer=str(pointer), synthetic_dir=str(pointer.parent))
    context = dg.build_sensor_context(cursor=cursor, instance=dg.DagsterInstance.ephemeral(), resources={"raw_source": source})
    return data_change_sensor(context), context.cursor


def test_a_new_pointer_version_at_a_new_commit_requests_one_run(checkout, synthetic_root):
    pointer = checkout / "data" / "meters.dvc"
    first, cursor = tick(pointer)
    assert isinstance(first, dg.RunRequest) and first.run_key == pointer_version(pointer)
    quiet, cursor = tick(pointer, cursor)
    assert "still names data version" in quiet.skip_message
    for sub in ("images", "masks"):
        extra = sorted((synthetic_root / sub).iterdir())[20]
        shutil.copyfile(extra, checkout / "data" / "meters" / sub / extra.name)
    publish(checkout, "more data")
    second, _ = tick(pointer, cursor)
    assert isinstance(second, dg.RunRequest)
    assert second.run_key == pointer_version(pointer) != first.run_key


def test_resolve_pulls_the_version_the_pointer_names(checkout):
    pointer = checkout / "data" / "meters.dvc"
    shutil.rmtree(checkout / "data" / "meters")
    folder = RawImageSource(dvc_pointer=str(pointer), synthetic_dir=str(checkout)).resolve()
    assert directory_md5(folder) == pointer_version(pointer)


def test_an_unreadable_pointer_is_skipped_with_the_reason(tmp_path):
    result, _ = tick(tmp_path / "missing.dvc")
    assert "not a readable DVC pointer" in result.skip_message
