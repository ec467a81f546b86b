"""DVC push and pull through a real S3 server on 127.0.0.1 that checks credentials (SeaweedFS)."""

import shutil

import pytest

from tests.s3server import ACCESS_KEY, SECRET_KEY, start_s3_server
from wms.data.versioning import DvcError, DvcRepository, directory_md5

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BUCKET = "wms-dvc"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = start_s3_server(tmp_path_factory.mktemp("seaweedfs"))
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


@pytest.fixture
def repository(s3, tmp_path, synthetic_root, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    repo = DvcRepository(root=tmp_path / "repo", remote_url=f"s3://{BUCKET}/{tmp_path.name}", endpoint_url=s3.endpoint_url)
    repo.ensure()
    shutil.copytree(synthetic_root / "images", repo.root / "data" / "images")
    return repo


def test_push_reaches_the_bucket_and_pull_restores_the_files(repository, s3, tmp_path):
    version = repository.track("data")
    objects = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=tmp_path.name).get("KeyCount", 0)
    assert objects >= 49  # 48 photos and the .dir listing
    shutil.rmtree(repository.root / "data")
    shutil.rmtree(repository.root / ".dvc" / "cache")
    repository.pull("data")
    assert directory_md5(repository.root / "data") == version


def test_wrong_credentials_fail_clearly_and_change_nothing(repository, monkeypatch):
    first = repository.track("data")
    pointer = repository.pointer_path("data").read_text()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    victim = sorted((repository.root / "data" / "images").iterdir())[0]
    victim.write_bytes(victim.read_bytes() + b"\0")
    changed_bytes = victim.read_bytes()
    with pytest.raises(DvcError, match="refused the credentials"):
        repository.track("data")
    assert repository.pointer_path("data").read_text() == pointer
    assert repository.data_version("data") == first
    assert victim.read_bytes() == changed_bytes, "the local data is left as it was"


def test_a_data_set_made_in_one_pod_is_pulled_in_another_from_its_pointer(repository, tmp_path):
    """dagster-k8s runs each training step in a pod of its own: the data set travels as its pointer and the remote."""
    from wms_assets.assets.data import VersionedDataset
    from wms_assets.constants import DATA_FOLDER

    shutil.copytree(repository.root / "data" / "images", repository.root / DATA_FOLDER / "images")
    version = repository.track(DATA_FOLDER)
    pointer = repository.pointer_path(DATA_FOLDER).read_text()
    names = sorted(path.name for path in (repository.root / DATA_FOLDER / "images").iterdir())
    other_pod = DvcRepository(root=tmp_path / "other-pod", remote_url=repository.remote_url, endpoint_url=repository.endpoint_url)
    data_set = VersionedDataset(str(other_pod.root / DATA_FOLDER), version, {"train": names}, {}, {}, other_pod, pointer)

    (image, _), *_ = [(pair.image, pair.mask) for pair in data_set.pairs("train")]

    assert image.is_file() and image.parent == other_pod.root / DATA_FOLDER / "images"
    assert directory_md5(other_pod.root / DATA_FOLDER) == version
