"""The whole asset graph on a tiny synthetic data set, against real DVC, MLflow and TorchServe."""

import base64
import io
import json
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import torch
from PIL import Image

from tests.integration.conftest import TINY_TRAINING
from tests.integration.conftest import definitions as stage_definitions
from tests.models import LEARNED_FLOOR
from wms.core.local_state import MODEL_NAME, StateLayout
from wms.registry.model_registry import CHAMPION, ModelRegistry
from wms_assets.resources import LocalModelServer
from wms_assets.run import materialize_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def definitions(layout: StateLayout, server: LocalModelServer, min_test_iou: float) -> dg.Definitions:
    """Gates opened wide except the IoU minimum: the fine-tunes and retrains here differ from the champion by noise
    on 11 test photos (tests/integration/test_lineage_gates.py closes each gate in turn)."""
    return stage_definitions(layout, server, min_test_iou=min_test_iou, min_test_dice=0.0, regression_margin=0.99)


def test_every_stage_materializes_and_every_gate_passes(first_run):
    materialized = {line.split()[-1] for line in first_run.lines if line.strip().startswith("materialized")}
    assert materialized == {
        "raw_images",
        "dataset",
        "trained_model",
        "registered_model",
        "champion_model",
        "serving_artifacts",
        "serving_image",
        "staging_release",
        "prod_release",
    }
    for check in (
        "enough_valid_pairs",
        "rejection_rate_under_ceiling",
        "masks_are_binary",
        "no_image_in_two_splits",
        "test_scores_meet_minimums",
        "no_regression_against_champion",
        "onnx_matches_pytorch",
        "onnx_latency_within_budget",
        "staging_release_answers",
    ):
        assert f"  check {check}: passed" in first_run.lines


def test_the_training_in_cycles_logs_the_last_cycle_checkpoint(stage, first_run):
    layout, _, _ = stage
    run_id = first_run.result.output_for_node("trained_model").run_id
    registry = ModelRegistry(layout.mlflow_tracking_uri, MODEL_NAME)
    logged = registry.download(f"runs:/{run_id}/checkpoint/last.pt", layout.home / "downloaded")
    assert torch.load(logged, weights_only=False)["settings"]["cycle"] == 2


def test_the_released_model_answers_with_a_mask(stage, first_run):
    _, server, _ = stage
    photo = Path(first_run.sample_photo).read_bytes()
    answer = server.server().predict(MODEL_NAME, photo)
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["mask_png_base64"]))))
    displayed = Image.open(first_run.sample_photo)
    from PIL import ImageOps

    assert mask.shape == ImageOps.exif_transpose(displayed).size[::-1]
    assert answer["model_version"] == "1"
    assert answer["trained_on"] == "synthetic"
    assert "will not find the digit window in real meter photos" in answer["notice"]


def test_the_registered_version_carries_its_model_card(stage, first_run):
    layout, _, _ = stage
    version = ModelRegistry(layout.mlflow_tracking_uri, MODEL_NAME).client.get_model_version(MODEL_NAME, "1")
    assert version.tags["trained_on"] == "synthetic"
    assert version.tags["start"].startswith("from scratch: there is no champion")
    assert "test_scores passed" in version.description and "will not find the digit window" in version.description
    run_name = ModelRegistry(layout.mlflow_tracking_uri, MODEL_NAME).client.get_run(version.run_id).info.run_name
    assert run_name.startswith(f"demo, from scratch, data {version.tags['data_version'][:8]}, 20")


def test_status_tells_the_champion_what_is_served_the_data_version_and_the_runs(stage, first_run):
    from wms_assets.status import local_status

    layout, server, instance = stage
    status = local_status(layout, instance)
    champion = next(state for state in status.versions if state.alias == CHAMPION)
    assert (champion.version, champion.trained_on) == ("1", "synthetic")
    assert (status.served_version, status.inference_url) == ("1", server.server().inference_url)
    assert status.data_version == first_run.result.output_for_node("dataset").data_version
    assert [(run.run_id, run.status) for run in status.runs] == [(first_run.run_id, "SUCCESS")]


def test_the_service_scores_the_test_split_as_the_registry_recorded(stage, first_run):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from served_quality import score_served

    test_pairs = first_run.result.output_for_node("dataset").pairs("test")
    served = score_served(first_run.release_url, test_pairs)
    recorded = first_run.result.output_for_node("trained_model").scores
    assert served["model_versions"] == {"1": len(test_pairs)}
    assert recorded["test_mean_iou"] >= LEARNED_FLOOR, "a model that learned nothing would agree as well"
    assert served["scores"]["mean_iou"] == pytest.approx(recorded["test_mean_iou"], abs=1e-4)
    assert served["scores"]["mean_dice"] == pytest.approx(recorded["test_mean_dice"], abs=1e-4)


def test_a_second_run_reuses_the_trained_model(stage, first_run):
    layout, server, instance = stage
    outcome = materialize_job(TINY_TRAINING, instance, definitions(layout, server, min_test_iou=0.0))
    assert outcome.success, outcome.summary()
    materialization = instance.get_latest_materialization_event(dg.AssetKey("trained_model")).asset_materialization
    assert materialization.metadata["reused_previous_run"].value is True
    assert server.server().served_version(MODEL_NAME) == "1"


def test_ten_new_photos_lead_the_data_sensor_to_one_run_that_fine_tunes_the_champion(stage, first_run):
    from wms.data.synthetic import SyntheticSpec, generate_dataset
    from wms_assets.sensors.data import data_change_sensor

    layout, server, instance = stage
    defs = definitions(layout, server, min_test_iou=0.0)

    def tick(cursor):
        context = dg.build_sensor_context(
            cursor=cursor, instance=instance, resources={"raw_source": defs.resources["raw_source"]}
        )
        return data_change_sensor(context), context.cursor

    quiet, cursor = tick(None)
    assert isinstance(quiet, dg.SkipReason), "the materialized data must not be run again"
    extra = layout.home / "extra"
    generate_dataset(extra, SyntheticSpec(count=10, seed=123))
    for sub in ("images", "masks"):
        for path in (extra / sub).iterdir():
            (layout.synthetic_data / sub / f"added_{path.name}").write_bytes(path.read_bytes())
    settling, cursor = tick(cursor)
    request, cursor = tick(cursor)
    assert isinstance(settling, dg.SkipReason) and isinstance(request, dg.RunRequest)
    registry = ModelRegistry(layout.mlflow_tracking_uri, MODEL_NAME)
    versions_before = len(registry.client.search_model_versions(f"name = '{MODEL_NAME}'"))
    champion = str(registry.version_by_alias(CHAMPION).version)
    outcome = materialize_job({**TINY_TRAINING, **request.run_config["ops"]["trained_model"]["config"]}, instance, defs)
    assert outcome.success, outcome.summary()
    assert len(registry.client.search_model_versions(f"name = '{MODEL_NAME}'")) == versions_before + 1
    trained = outcome.result.output_for_node("trained_model")
    assert trained.origin["start"].startswith(f"fine-tuned from version {champion}")
    assert trained.origin["parent_version"] == champion and trained.origin["schedule"] == "1:0.001:96"
    assert registry.client.get_run(trained.run_id).data.params["initial_weights"].endswith(f"version-{champion}.pt")
    dataset = instance.get_latest_materialization_event(dg.AssetKey("dataset")).asset_materialization
    assert dataset.metadata["source_version"].value == request.run_key
    after, _ = tick(cursor)
    assert isinstance(after, dg.SkipReason)


def test_rollback_returns_to_the_previous_champion_and_the_release_follows(stage, first_run, monkeypatch):
    from click.testing import CliRunner

    from wms.registry.model_registry import ARCHIVED_TAG
    from wms_assets.run import rollback_champion
    from wms_cli.main import main

    layout, server, instance = stage
    defs = definitions(layout, server, min_test_iou=0.0)
    registry = ModelRegistry(layout.mlflow_tracking_uri, MODEL_NAME)
    outcome = materialize_job({**TINY_TRAINING, "seed": 9}, instance, defs)
    assert outcome.success, outcome.summary()
    newest = str(registry.version_by_alias(CHAMPION).version)
    assert server.server().served_version(MODEL_NAME) == newest != "1"

    rolled = rollback_champion("misreads night photos", instance, defs)
    assert rolled.success, rolled.summary()
    back_to = str(registry.version_by_alias(CHAMPION).version)
    assert back_to != newest
    assert server.server().served_version(MODEL_NAME) == back_to
    assert "rolled back" in registry.client.get_model_version(MODEL_NAME, newest).tags[ARCHIVED_TAG]

    monkeypatch.setenv("WMS_HOME", str(layout.home))
    shown = CliRunner().invoke(main, ["models", "history"])
    assert shown.exit_code == 0, shown.output
    assert f"| rollback | {back_to} | {newest} | misreads night photos |" in shown.output
    history = json.loads(CliRunner().invoke(main, ["models", "history", "--json"]).output)["history"]
    assert (history[-1]["action"], history[-1]["version"], history[-1]["previous"]) == ("rollback", back_to, newest)
    description = registry.client.get_registered_model(MODEL_NAME).description
    assert f"| rollback | {back_to} | {newest} | misreads night photos |" in description, "the history, in MLflow's UI"
    assert f"version {int(back_to):>3}  aliases: champion" in shown.output
