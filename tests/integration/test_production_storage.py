"""Production-like storage end to end: MLflow server on MariaDB (for RDS MySQL) with artefacts on S3 (SeaweedFS),
Dagster's instance on PostgreSQL. The training part of the graph trains, registers, gates and promotes."""

import re
import urllib.request
import uuid

import dagster as dg
import psycopg2
import pymysql
import pytest
import yaml

from tests.conftest import free_port
from tests.mlflowserver import MARIADB, mariadb_available, mariadb_database, start_mlflow_server
from tests.s3server import start_s3_server
from wms.core.local_state import MODEL_NAME, StateLayout
from wms.registry.model_registry import CHAMPION, ModelRegistry
from wms_assets.constants import TRAINED_MODEL
from wms_assets.definitions import build_definitions
from wms_assets.profiles import local_resources
from wms_assets.resources import LocalModelServer, MlflowRegistry, PromotionPolicy, RawImageSource
from wms_assets.run import materialize_training

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BUCKET = "wms-mlflow"
DAGSTER_INLINE_MARKDOWN_CHARS = 1000
"""The Dagster UI draws a Markdown metadata value in place when it is shorter than this (ui-core MetadataEntry.tsx)."""
POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    reason = mariadb_available()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("mlflow-server")
    s3 = start_s3_server(folder / "s3")
    s3.client().create_bucket(Bucket=BUCKET)
    with mariadb_database() as database:
        server = start_mlflow_server(database, f"s3://{BUCKET}/artifacts", s3.endpoint_url, folder)
        yield server, s3
        server.stop()
    s3.stop()


@pytest.fixture(scope="module")
def postgres_instance(tmp_path_factory):
    name = f"wms_dagster_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(dbname="postgres", **POSTGRES)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    home = tmp_path_factory.mktemp("dagster-home")
    postgres_db = {
        "username": "postgres",
        "password": "unused-with-trust-auth",
        "hostname": "127.0.0.1",
        "db_name": name,
        "port": 5432,
        "scheme": "postgresql+psycopg2",  # SQLAlchemy 2.1 maps postgresql:// to psycopg 3; dagster-postgres ships psycopg2
    }
    settings = {"telemetry": {"enabled": False}, "storage": {"postgres": {"postgres_db": postgres_db}}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    instance = dg.DagsterInstance.from_config(str(home))
    yield instance, name
    instance.dispose()
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def test_train_register_gate_and_promote_on_production_storage(mlflow_server, postgres_instance, tmp_path):
    server, s3 = mlflow_server
    instance, dagster_db = postgres_instance
    layout = StateLayout(tmp_path / "state")
    resources = local_resources(layout)
    resources["raw_source"] = RawImageSource(synthetic_dir=str(layout.synthetic_data), synthetic_count=40, synthetic_seed=3)
    resources["mlflow"] = MlflowRegistry(tracking_uri=server.url, model_name=MODEL_NAME, ui_url=server.url)
    resources["promotion_policy"] = PromotionPolicy(min_test_iou=0.0, min_test_dice=0.0)
    resources["model_server"] = LocalModelServer(home=str(layout.torchserve_home), inference_port=free_port())

    outcome = materialize_training({"epochs": 1, "image_size": 64}, instance, build_definitions(resources))
    assert outcome.success, outcome.summary()
    assert "  check onnx_matches_pytorch: passed" in outcome.lines

    registry = ModelRegistry(server.url, MODEL_NAME)
    champion = registry.version_by_alias(CHAMPION)
    assert champion is not None and champion.tags["gate.test_scores"].startswith("passed")
    with pymysql.connect(**MARIADB, database=server.database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT name, alias, version FROM registered_model_aliases")
        assert (MODEL_NAME, CHAMPION, int(champion.version)) in set(cursor.fetchall())
    keys = [item["Key"] for item in s3.client().list_objects_v2(Bucket=BUCKET, Prefix="artifacts/").get("Contents", [])]
    assert any(key.endswith("onnx/model.onnx") for key in keys), keys
    assert any(key.endswith("checkpoint/last.pt") for key in keys), keys
    with psycopg2.connect(dbname=dagster_db, **POSTGRES) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (outcome.run_id,))
        assert cursor.fetchone() == ("SUCCESS",)

    worst_cases = instance.get_latest_materialization_event(TRAINED_MODEL).asset_materialization.metadata["worst_test_cases"]
    assert len(worst_cases.md_str) < DAGSTER_INLINE_MARKDOWN_CHARS  # longer Markdown hides behind "[Show Markdown]"
    image_url = re.search(r"!\[[^]]*\]\(([^)]+)\)", worst_cases.md_str).group(1)
    assert image_url.startswith(f"{server.url}/get-artifact?")
    with urllib.request.urlopen(image_url, timeout=30) as response:
        assert response.read(8) == b"\x89PNG\r\n\x1a\n"
