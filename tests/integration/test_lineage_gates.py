"""Every blocking gate stops a real lineage run: a real candidate is trained (or real photos arrive), the gate measures
it and refuses, and the champion and the served version stay as they were, while the run and the model card say why.

The stage (tests/integration/conftest.py): synthetic photos, a champion that learned them (test IoU over
LEARNED_FLOOR), served by a real TorchServe, tracked in a real MLflow store. Each test runs the whole lineage once
more with one thing wrong.
"""

import copy
import uuid

import dagster as dg
import pytest
import torch

from tests.integration.conftest import definitions
from tests.models import LEARNING_SCHEDULE
from wms.core.local_state import MODEL_NAME, StateLayout
from wms.registry.model_registry import CHAMPION, ModelRegistry
from wms.training.export import export_onnx
from wms_assets.assets import model as model_assets
from wms_assets.run import JobOutcome, materialize_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def registry_of(layout: StateLayout) -> ModelRegistry:
    return ModelRegistry(layout.mlflow_tracking_uri, MODEL_NAME)


@pytest.fixture
def before(stage, first_run) -> tuple[str, str]:
    """The champion and the served version before the test's run."""
    layout, server, _ = stage
    return str(registry_of(layout).version_by_alias(CHAMPION).version), server.server().served_version(MODEL_NAME)


def assert_refused_by(outcome: JobOutcome, check: str, stage, before: tuple[str, str]) -> str:
    """The run failed at `check`, the champion and the served version are as they were; the refusal's line."""
    layout, server, _ = stage
    assert not outcome.success
    refusals = [line for line in outcome.lines if line.startswith(f"  check {check}: FAILED (failed: ")]
    assert refusals, outcome.summary()
    assert not any(line.strip().startswith("materialized champion_model") for line in outcome.lines)
    after = str(registry_of(layout).version_by_alias(CHAMPION).version), server.server().served_version(MODEL_NAME)
    assert after == before
    return refusals[0]


def assert_the_card_says_why(layout: StateLayout, outcome: JobOutcome, gate: str) -> None:
    version = outcome.result.output_for_node("registered_model").version
    registered = registry_of(layout).client.get_model_version(MODEL_NAME, version)
    assert registered.tags[f"gate.{gate}"].startswith("failed: ")
    assert f"{gate} failed: " in registered.description, registered.description


def candidate(seed: int) -> dict:
    """Training config of a new candidate, one quick epoch: a seed of its own makes it a new training, not a finished
    run reused. Where a gate other than no-regression is to refuse it, that gate's own test opens the others."""
    return {**LEARNING_SCHEDULE, "cycles": "1:0.002:64", "seed": seed, "start": "scratch"}


def test_the_test_scores_gate_refuses_a_candidate_under_the_minimums(stage, before):
    layout, server, instance = stage
    strict = definitions(layout, server, min_test_iou=0.9, min_test_dice=0.9, regression_margin=0.99)
    outcome = materialize_job(candidate(seed=11), instance, strict)
    line = assert_refused_by(outcome, "test_scores_meet_minimums", stage, before)
    assert "IoU 0." in line and "< 0.9" in line
    assert_the_card_says_why(layout, outcome, "test_scores")
    registered = instance.get_latest_materialization_event(dg.AssetKey("registered_model")).asset_materialization
    last_gates = registered.metadata["last_completed_gates"].md_str  # what the UI shows while this candidate is judged
    judged_before = int(outcome.result.output_for_node("registered_model").version) - 1
    assert last_gates.startswith(f"**version {judged_before}** (aliases: ")
    assert "| test_scores | passed: IoU" in last_gates


def test_the_parity_gate_refuses_an_export_that_differs_from_the_trained_model(stage, before, monkeypatch):
    """The exported file is not the model that was trained: its head's bias is shifted, as a stale or hand-edited
    export would be. The gate runs both on test photos and measures the gap itself."""
    layout, server, instance = stage

    def export_of_another_model(model, image_size, path, metadata):
        shifted = copy.deepcopy(model)
        with torch.no_grad():
            shifted.segmentation_head[0].bias += 2.0
        return export_onnx(shifted, image_size, path, metadata)

    monkeypatch.setattr(model_assets, "export_onnx", export_of_another_model)
    lenient = definitions(layout, server, min_test_iou=0.0, min_test_dice=0.0, regression_margin=0.99)
    outcome = materialize_job(candidate(seed=12), instance, lenient)
    line = assert_refused_by(outcome, "onnx_matches_pytorch", stage, before)
    assert "> 1e-03" in line
    assert_the_card_says_why(layout, outcome, "onnx_parity")


def test_the_latency_gate_refuses_a_model_slower_than_the_budget(stage, before):
    layout, server, instance = stage
    hurried = definitions(layout, server, max_p95_latency_ms=0.5, min_test_iou=0.0, min_test_dice=0.0, regression_margin=0.99)
    outcome = materialize_job(candidate(seed=13), instance, hurried)
    line = assert_refused_by(outcome, "onnx_latency_within_budget", stage, before)
    assert "> budget 0.5 ms" in line
    assert_the_card_says_why(layout, outcome, "cpu_latency")


def test_the_no_regression_gate_refuses_a_challenger_clearly_worse_than_the_champion(stage, before):
    """One epoch at 64 pixels learns next to nothing: every other gate is opened, the paired comparison refuses it."""
    layout, server, instance = stage
    lenient = definitions(layout, server, min_test_iou=0.0, min_test_dice=0.0)
    outcome = materialize_job(candidate(seed=14), instance, lenient)
    line = assert_refused_by(outcome, "no_regression_against_champion", stage, before)
    assert f"than champion version {before[0]}: IoU difference -" in line and "interval [" in line
    assert_the_card_says_why(layout, outcome, "no_regression")


def test_a_data_check_stops_the_run_before_anything_trains(stage, before):
    """Photo files that are not photos arrive: more than the policy's 10 % of the folder is rejected."""
    layout, server, instance = stage
    registry = registry_of(layout)
    versions_before = len(registry.client.search_model_versions(f"name = '{MODEL_NAME}'"))
    broken = []
    for _ in range(12):
        name = f"id_9{uuid.uuid4().int % 10_000}_value_0_0.jpg"
        for folder in ("images", "masks"):
            path = layout.synthetic_data / folder / name
            path.write_bytes(b"not a photo, the upload was cut short")
            broken.append(path)
    try:
        outcome = materialize_job(candidate(seed=15), instance, definitions(layout, server))
    finally:
        for path in broken:
            path.unlink()
    line = assert_refused_by(outcome, "rejection_rate_under_ceiling", stage, before)
    assert "rejection rate 0.1" in line and "> the ceiling 0.1" in line
    assert not any(line.strip().startswith("materialized trained_model") for line in outcome.lines)
    assert len(registry.client.search_model_versions(f"name = '{MODEL_NAME}'")) == versions_before
