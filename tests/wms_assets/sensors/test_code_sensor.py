import subprocess

import dagster as dg
import pytest

from wms.data.watched import folder_source, record_watched
from wms_assets.resources import CodeCheckout, RawImageSource
from wms_assets.sensors.code import code_change_sensor


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def commit(repo, path, text):
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", f"change {path}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    commit(tmp_path, "README.md", "first")
    return tmp_path


def tick(repo, cursor=None, state=None):
    source = RawImageSource(state_file=str(state or repo / "no-record.json"), synthetic_dir=str(repo / "synthetic"))
    context = dg.build_sensor_context(cursor=cursor, resources={"code": CodeCheckout(path=str(repo)), "raw_source": source})
    return code_change_sensor(context), context.cursor


def test_the_first_tick_takes_the_current_commit_as_its_baseline(repo):
    result, cursor = tick(repo)
    assert isinstance(result, dg.SkipReason)
    assert cursor == git(repo, "rev-parse", "HEAD")


def test_no_new_commit_is_skipped(repo):
    _, cursor = tick(repo)
    result, _ = tick(repo, cursor)
    assert "no new commit" in result.skip_message


def test_a_commit_outside_the_training_code_is_skipped(repo):
    _, cursor = tick(repo)
    head = commit(repo, "README.md", "second")
    result, new_cursor = tick(repo, cursor)
    assert "changes no training code" in result.skip_message
    assert new_cursor == head


def test_a_training_code_commit_requests_a_forced_retrain_keyed_by_the_sha(repo):
    _, cursor = tick(repo)
    head = commit(repo, "wms/training/train.py", "new loop")
    result, _ = tick(repo, cursor)
    assert isinstance(result, dg.RunRequest)
    assert result.run_key == head
    assert result.run_config["ops"]["trained_model"]["config"]["reuse_finished_run"] is False
    assert result.run_config["ops"]["trained_model"]["config"]["start"] == "scratch"
    assert result.tags["wms/changed"] == "wms/training/train.py"
    assert result.tags["wms/reason"] == "training code changed"


def test_the_retrain_uses_the_watched_photos_training_settings(repo, synthetic_root, tmp_path):
    state = tmp_path / "watched.json"
    record_watched(state, folder_source(synthetic_root, {"preset": "cpu"}, "test"))
    _, cursor = tick(repo, state=state)
    commit(repo, "wms/training/model.py", "new head")
    result, _ = tick(repo, cursor, state=state)
    assert result.run_config["ops"]["trained_model"]["config"]["preset"] == "cpu"
    assert result.tags["wms/data_source"] == str(synthetic_root.resolve())


def test_a_folder_outside_git_is_skipped_with_the_reason(tmp_path):
    result, _ = tick(tmp_path / "not-a-repo")
    assert "cannot read the Git checkout" in result.skip_message
