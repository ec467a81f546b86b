"""The drift sensor asks for a retrain only when the drift check warned on each of its last evaluations."""

from pathlib import Path

import dagster as dg
import pytest

from wms.data.watched import record_watched, synthetic_source
from wms_assets.constants import INPUT_DRIFT_CHECK
from wms_assets.resources import DriftPolicy, RawImageSource
from wms_assets.sensors.drift import drift_retrain_sensor


def evaluate_drift(instance: dg.DagsterInstance, drifted: bool) -> None:
    """One materialization of an input_drift asset whose check passes or warns, stored in the instance."""

    @dg.asset(name="input_drift")
    def input_drift() -> int:
        return 1

    @dg.asset_check(asset=input_drift, name=INPUT_DRIFT_CHECK)
    def check() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=not drifted, severity=dg.AssetCheckSeverity.WARN)

    assert dg.materialize([input_drift, check], instance=instance).success


def tick(instance: dg.DagsterInstance, state_file: Path | None = None, **policy) -> dg.RunRequest | dg.SkipReason:
    source = RawImageSource(state_file=str(state_file) if state_file else None, synthetic_dir="unused")
    context = dg.build_sensor_context(instance=instance, resources={"drift_policy": DriftPolicy(**policy), "raw_source": source})
    return drift_retrain_sensor(context)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def test_persistent_drift_requests_one_retrain_keyed_by_the_last_evaluation(instance, tmp_path):
    for _ in range(3):
        evaluate_drift(instance, drifted=True)

    state = record_watched(tmp_path / "watched.json", synthetic_source({"preset": "cpu"}, "test"))
    request = tick(instance, tmp_path / "watched.json", retrain_on_drift=True, retrain_after=3)

    assert isinstance(request, dg.RunRequest) and request.run_key.startswith("drift-")
    config = request.run_config["ops"]["trained_model"]["config"]
    assert config == {"preset": "cpu", "reuse_finished_run": False}, "the watched photos' recorded settings, retrained"
    assert request.tags["wms/reason"] == "input drift persisted" and state.training == {"preset": "cpu"}
    again = tick(instance, tmp_path / "watched.json", retrain_on_drift=True, retrain_after=3)
    assert again.run_key == request.run_key, "same evidence, same key"


def test_one_calm_evaluation_among_the_last_ones_means_no_retrain(instance):
    for drifted in (True, False, True):
        evaluate_drift(instance, drifted)

    assert "no drift in at least one" in tick(instance, retrain_on_drift=True, retrain_after=3).skip_message


def test_too_few_evaluations_and_the_default_switch_both_skip(instance):
    evaluate_drift(instance, drifted=True)

    assert "1 drift evaluations so far" in tick(instance, retrain_on_drift=True, retrain_after=3).skip_message
    assert "off" in tick(instance).skip_message
    assert drift_retrain_sensor.default_status == dg.DefaultSensorStatus.STOPPED
