import dagster as dg
import pytest

from wms_assets import constants
from wms_assets.definitions import defs
from wms_assets.profiles import current_profile


def test_definitions_load_with_every_stage():
    keys = set(defs.resolve_asset_graph().get_all_asset_keys())
    assert keys == {
        constants.RAW_IMAGES,
        constants.DATASET,
        constants.TRAINED_MODEL,
        constants.REGISTERED_MODEL,
        constants.CHAMPION_MODEL,
        constants.SERVING_ARTIFACTS,
        constants.SERVING_IMAGE,
        constants.STAGING_RELEASE,
        constants.PROD_RELEASE,
        constants.INPUT_DRIFT,
    }
    lineage = defs.resolve_job_def(constants.LINEAGE_JOB).asset_layer.selected_asset_keys
    assert constants.INPUT_DRIFT not in lineage, "the lineage never waits for a Prometheus"
    assert defs.resolve_job_def(constants.DRIFT_JOB).asset_layer.selected_asset_keys == {constants.INPUT_DRIFT}
    release = defs.resolve_job_def(constants.RELEASE_JOB).asset_layer.selected_asset_keys
    packaging = {constants.SERVING_ARTIFACTS, constants.SERVING_IMAGE}
    assert release == packaging | {constants.STAGING_RELEASE, constants.PROD_RELEASE}
    assert defs.resolve_job_def(constants.STAGING_JOB).asset_layer.selected_asset_keys == packaging | {constants.STAGING_RELEASE}
    assert defs.resolve_job_def(constants.PRODUCTION_JOB).asset_layer.selected_asset_keys == {constants.PROD_RELEASE}


def test_training_config_takes_the_preset_and_overrides_only_what_is_set():
    from wms.training.settings import PRESETS
    from wms_assets.assets.model import TrainingConfig

    assert TrainingConfig().settings() == PRESETS["demo"]
    full = TrainingConfig(preset="full", encoder="mobilenet_v2").settings()
    assert full.encoder == "mobilenet_v2" and full.epochs == PRESETS["full"].epochs
    assert TrainingConfig(preset="cpu").settings() == PRESETS["cpu"]
    assert TrainingConfig(cycles="2:0.002:64 1:0.001:96").settings().image_size == 96
    described = TrainingConfig.model_fields
    assert all(field.description for name, field in described.items()), "every training setting says what it does"


def test_the_promotion_gates_are_blocking():
    specs = [spec for assets_def in defs.resolve_asset_graph().assets_defs for spec in assets_def.check_specs]
    assert {spec.name: spec.blocking for spec in specs} == {
        "test_scores_meet_minimums": True,
        "no_regression_against_champion": True,
        "onnx_matches_pytorch": True,
        "onnx_latency_within_budget": True,
        "enough_valid_pairs": True,
        "rejection_rate_under_ceiling": True,
        "masks_are_binary": True,
        "split_proportions_within_tolerance": False,
        "no_image_in_two_splits": True,
        "staging_release_answers": True,
        "input_drift_within_limits": False,
    }


def test_asset_selection_strings_parse():
    """DVC's hydra pins antlr4 4.9.3, which breaks this parser at run time (dagster-io/dagster#27487)."""
    selection = dg.AssetSelection.from_string("key:dataset+")
    resolved = selection.resolve(defs.resolve_asset_graph())
    assert constants.TRAINED_MODEL in resolved


def test_an_unknown_profile_is_refused(monkeypatch):
    monkeypatch.setenv("WMS_PROFILE", "mars")
    with pytest.raises(ValueError, match="use one of local, aws"):
        current_profile()


def test_every_asset_check_sensor_and_job_says_what_it_is():
    repository = defs.get_repository_def()
    graph = repository.asset_graph
    silent = [node.key.to_user_string() for node in graph.asset_nodes if not node.description]
    silent += [key.name for key in graph.asset_check_keys if not graph.get_check_spec(key).description]
    silent += [sensor.name for sensor in repository.sensor_defs if not sensor.description]
    silent += [job.name for job in repository.get_all_jobs() if not job.name.startswith("__") and not job.description]
    assert silent == [], "the Dagster UI shows these without a description"
