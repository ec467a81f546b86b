"""A training step that fails after its last epoch keeps what it trained: the rerun finishes it without training again.

The failure is real: the step raises in the middle of logging its result, the Dagster run fails and the MLflow run is
marked FAILED; the rerun is a new Dagster run of the same job, against the same DVC, MLflow and checkpoint folders.
"""

import logging

import dagster as dg
import pytest

import wms_assets.assets.model as model_assets
from wms.core.local_state import MODEL_NAME, StateLayout
from wms.registry.model_registry import CHAMPION, ModelRegistry
from wms_assets.constants import PROGRESS_TAG
from wms_assets.definitions import build_definitions
from wms_assets.profiles import local_resources
from wms_assets.resources import PromotionPolicy, RawImageSource
from wms_assets.run import materialize_training

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TWO_CYCLES = {"cycles": "1:0.002:64 1:0.001:64"}


def training_definitions(layout: StateLayout) -> dg.Definitions:
    resources = local_resources(layout)
    resources["raw_source"] = RawImageSource(synthetic_dir=str(layout.synthetic_data), synthetic_count=40, synthetic_seed=1)
    resources["promotion_policy"] = PromotionPolicy(min_test_iou=0.0, min_test_dice=0.0, regression_margin=0.99)
    return build_definitions(resources)


def export_fails(*args, **kwargs):
    raise OSError("no space left on device (made to fail by the test, after the last epoch)")


def only_run(registry: ModelRegistry):
    experiment = registry.client.get_experiment_by_name(registry.experiment_name)
    (run,) = registry.client.search_runs([experiment.experiment_id])
    return run


def test_a_training_that_failed_after_its_last_epoch_is_finished_by_the_rerun_without_training_again(tmp_path, monkeypatch):
    layout = StateLayout(tmp_path / "state")
    defs, instance = training_definitions(layout), dg.DagsterInstance.ephemeral()
    registry = ModelRegistry(layout.mlflow_tracking_uri, MODEL_NAME)

    with monkeypatch.context() as patched:
        patched.setattr(model_assets, "export_onnx", export_fails)
        failed = materialize_training(TWO_CYCLES, instance, defs)
    assert not failed.success
    assert any("step trained_model failed" in line and "no space left on device" in line for line in failed.lines)
    failed_run = only_run(registry)
    assert failed_run.info.status == "FAILED"
    assert sorted(path.name for path in layout.checkpoints.glob("*/cycle-*/last.pt")) == ["last.pt", "last.pt"]
    assert registry.client.search_model_versions(f"name = '{MODEL_NAME}'") == []
    progress = instance.get_run_by_id(failed.run_id).tags[PROGRESS_TAG]
    assert progress.startswith("cycle 2/2, epoch 2/2, 0 left, about "), "the run's tag says where the training stood"
    told = [entry.user_message for entry in instance.all_logs(failed.run_id) if entry.level >= logging.ERROR]
    assert any("2 trained epochs are kept in" in message and "without training again" in message for message in told)

    rerun = materialize_training(TWO_CYCLES, instance, defs)
    assert rerun.success, rerun.summary()
    trained = instance.get_latest_materialization_event(dg.AssetKey("trained_model")).asset_materialization.metadata
    assert (trained["resumed_at_epoch"].value, trained["epochs_run"].value) == (2, 2)
    finished = only_run(registry)
    assert (finished.info.run_id, finished.info.status) == (failed_run.info.run_id, "FINISHED")
    losses = registry.client.get_metric_history(finished.info.run_id, "train_loss")
    assert [metric.step for metric in losses] == [1, 2], "each epoch trained once, none again by the rerun"
    assert str(registry.version_by_alias(CHAMPION).version) == "1"
    assert not any(layout.checkpoints.iterdir()), "the checkpoints go once their MLflow run has finished"
