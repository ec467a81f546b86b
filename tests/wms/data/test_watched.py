"""The watched-source record: one file every process reads, changed only on purpose, with its history."""

import pytest

from wms.data.watched import (
    FOLDER,
    SYNTHETIC,
    WatchedSourceError,
    folder_source,
    pointer_source,
    read_watched,
    record_watched,
    synthetic_source,
    watched_history,
)


def test_nothing_recorded_reads_as_synthetic(tmp_path):
    source = read_watched(tmp_path / "watched.json")
    assert source.is_synthetic and source.label == SYNTHETIC
    assert "no real source recorded" in source.describe()


def test_a_recorded_folder_is_read_back_with_its_training_settings(synthetic_root, tmp_path):
    path = tmp_path / "watched.json"
    record_watched(path, folder_source(synthetic_root, {"preset": "cpu"}, "test"))
    source = read_watched(path)
    assert (source.kind, source.location, source.training) == (FOLDER, str(synthetic_root.resolve()), {"preset": "cpu"})
    assert source.set_at and source.label == str(synthetic_root.resolve())
    assert "preset=cpu" in source.describe()


def test_a_folder_whose_links_may_leave_it_says_so(synthetic_root, tmp_path):
    path = tmp_path / "watched.json"
    record_watched(path, folder_source(synthetic_root, {}, "test", allow_outside_links=True))
    assert read_watched(path).allow_outside_links and watched_history(path)[-1].allow_outside_links
    assert "links to files outside it count" in read_watched(path).describe()


def test_every_change_is_appended_to_the_history(synthetic_root, tmp_path):
    path = tmp_path / "watched.json"
    record_watched(path, folder_source(synthetic_root, {}, "first"))
    record_watched(path, synthetic_source({}, "back to synthetic"))
    assert [change.reason for change in watched_history(path)] == ["first", "back to synthetic"]
    assert read_watched(path).is_synthetic


def test_a_folder_without_images_is_refused(tmp_path):
    with pytest.raises(WatchedSourceError, match="has no images/ folder"):
        folder_source(tmp_path, {}, "test")


def test_a_pointer_must_be_a_dvc_file(tmp_path):
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(WatchedSourceError, match=r"is not a \.dvc pointer file"):
        pointer_source(tmp_path / "data.txt", {}, "test")


def test_a_damaged_record_is_an_error_and_never_synthetic(tmp_path):
    path = tmp_path / "watched.json"
    path.write_text("{half a rec")
    with pytest.raises(WatchedSourceError, match="record it again with `wms data use`"):
        read_watched(path)
