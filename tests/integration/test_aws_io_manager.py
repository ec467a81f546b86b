"""The aws profile keeps asset values on S3 (step pods and stage runs share nothing else): a real S3 server here."""

import dagster as dg
import pytest

from tests.s3server import ACCESS_KEY, SECRET_KEY, start_s3_server
from wms_assets.profiles import IO_BUCKET_VARIABLE, resources_for

pytestmark = pytest.mark.integration
BUCKET = "wms-dagster-io"


@pytest.fixture
def s3(tmp_path, monkeypatch):
    server = start_s3_server(tmp_path / "seaweedfs")
    server.client().create_bucket(Bucket=BUCKET)
    for name, value in {
        "WMS_S3_ENDPOINT_URL": server.endpoint_url,
        IO_BUCKET_VARIABLE: BUCKET,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "WMS_ECR_REPOSITORY": "127.0.0.1:5000/wms-serving",
        "WMS_DVC_REMOTE": "s3://wms-dvc/data",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
    }.items():
        monkeypatch.setenv(name, value)
    yield server
    server.stop()


def test_an_asset_value_written_by_one_run_is_read_by_the_next_from_the_bucket(s3, tmp_path):
    @dg.asset
    def upstream() -> dict:
        return {"model_version": "7", "image": "wms-serving@sha256:" + "b" * 64}

    @dg.asset
    def downstream(upstream: dict) -> str:
        return upstream["image"]

    io_manager = resources_for("aws")["io_manager"]
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([upstream], resources={"io_manager": io_manager}, instance=instance).success
    stored = [item["Key"] for item in s3.client().list_objects_v2(Bucket=BUCKET)["Contents"]]
    later = dg.materialize([upstream.to_source_asset(), downstream], resources={"io_manager": io_manager}, instance=instance)

    assert stored == ["dagster-io/upstream"]
    assert later.output_for_node("downstream") == "wms-serving@sha256:" + "b" * 64
