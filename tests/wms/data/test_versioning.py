import os
import shutil
import time

import pytest

from wms.data.versioning import STALE_UPLOAD_AGE_S, DvcError, DvcRepository

pytestmark = pytest.mark.integration


@pytest.fixture
def repository(tmp_path, synthetic_root):
    repo = DvcRepository(root=tmp_path / "repo", remote_url=str(tmp_path / "remote"))
    repo.ensure()
    shutil.copytree(synthetic_root / "images", repo.root / "data" / "images")
    return repo


def test_track_pushes_to_the_remote_and_returns_the_hash(repository, tmp_path):
    version = repository.track("data")
    assert len(version) == 32
    assert repository.data_version("data") == version
    assert any((tmp_path / "remote").rglob("*")), "the push must reach the remote"


def test_the_hash_follows_the_content(repository):
    first = repository.track("data")
    assert repository.track("data") == first
    victim = next((repository.root / "data" / "images").iterdir())
    victim.write_bytes(victim.read_bytes() + b"\0")
    assert repository.track("data") != first


def test_a_failed_push_leaves_the_pointer_as_it_was(repository, tmp_path):
    first = repository.track("data")
    pointer = repository.pointer_path("data").read_text()
    broken = DvcRepository(root=repository.root, remote_url=str(tmp_path / "remote-is-a-file"))
    (tmp_path / "remote-is-a-file").write_text("not a folder")
    broken.ensure()
    next((repository.root / "data" / "images").iterdir()).write_bytes(b"changed")
    with pytest.raises(DvcError, match="dvc push"):
        broken.track("data")
    assert repository.pointer_path("data").read_text() == pointer
    assert broken.data_version("data") == first


def test_a_push_prunes_the_temporary_uploads_of_killed_pushes_and_leaves_a_live_ones(repository, tmp_path):
    repository.track("data")
    folder = next((tmp_path / "remote" / "files" / "md5").iterdir())
    killed, live = folder / ".killed-push.tmp", folder / ".live-push.tmp"
    for upload in (killed, live):
        upload.write_bytes(b"half of a photo")
    long_ago = time.time() - STALE_UPLOAD_AGE_S - 60
    os.utime(killed, (long_ago, long_ago))
    next((repository.root / "data" / "images").iterdir()).write_bytes(b"changed")
    repository.track("data")
    assert not killed.exists() and live.exists()


def test_an_untracked_folder_has_no_version(tmp_path):
    with pytest.raises(DvcError, match="not tracked"):
        DvcRepository(root=tmp_path, remote_url=str(tmp_path / "r")).data_version("data")


def test_directory_md5_is_the_hash_dvc_gives_the_folder(repository):
    from wms.data.versioning import directory_md5

    assert directory_md5(repository.root / "data") == repository.track("data")


def test_stat_fingerprint_follows_files_and_ignores_hidden_ones(repository):
    from wms.data.versioning import stat_fingerprint

    folder = repository.root / "data"
    first = stat_fingerprint(folder)
    (folder / ".hidden").write_text("x")
    assert stat_fingerprint(folder) == first
    (folder / "images" / "new.jpg").write_bytes(b"x")
    assert stat_fingerprint(folder) != first


def test_an_unreadable_file_counts_by_its_stat_and_its_becoming_readable_changes_the_version(synthetic_root):
    """The data sensor hashes the watched folder: one file it may not read must not stop it (run as nobody when root)."""
    import subprocess
    import sys

    from tests.unprivileged import as_unprivileged, copy_readable, shared_folder

    shared = shared_folder()
    try:
        folder = copy_readable(synthetic_root, shared / "data")
        locked = sorted((folder / "images").iterdir())[0]
        script = f"import pathlib, wms.data.versioning as v; print(v.directory_md5(pathlib.Path({str(folder)!r})))"
        hash_it = as_unprivileged([sys.executable, "-c", script])

        def version() -> str:
            result = subprocess.run(hash_it, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            return result.stdout.strip()

        readable = version()
        locked.chmod(0o000)
        unreadable = version()
        locked.chmod(0o644)
        assert len(unreadable) == 32 and unreadable != readable
        assert version() == readable
    finally:
        shutil.rmtree(shared)
