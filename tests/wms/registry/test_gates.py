import numpy as np
import pytest

from wms.inference.predict import Segmenter
from wms.registry.gates import (
    gate_outcomes,
    latency_gate,
    measure_latency_ms,
    onnx_parity_gate,
    regression_gate,
    scores_gate,
    verdict,
)


def test_scores_gate_names_every_score_under_its_minimum():
    assert scores_gate(0.92, 0.95, 0.9, 0.94).passed
    failed = scores_gate(0.85, 0.90, 0.9, 0.94)
    assert not failed.passed
    assert "IoU 0.8500 < 0.9" in failed.summary and "Dice 0.9000 < 0.94" in failed.summary
    assert failed.tag.startswith("failed: ")


@pytest.mark.parametrize(
    ("challenger", "champion", "passed"),
    [(0.90, None, True), (0.90, 0.905, True), (0.90, 0.92, False), (0.95, 0.90, True)],
)
def test_regression_gate_allows_a_drop_within_the_tolerance(challenger, champion, passed):
    result = regression_gate(challenger, champion, tolerance=0.01, champion="3")
    assert result.passed is passed
    if champion is not None:
        assert "version 3" in result.summary


def test_parity_and_latency_gates_compare_with_their_limits():
    assert onnx_parity_gate(1e-5, 1e-3).passed and not onnx_parity_gate(0.1, 1e-3).passed
    assert latency_gate(90.0, 50.0, 100.0).passed
    assert "budget 100 ms" in latency_gate(190.0, 150.0, 100.0).summary


def test_latency_is_measured_over_the_whole_inference():
    def slow_backend(batch):
        return np.full((len(batch), 1, 32, 32), -5.0, dtype=np.float32)

    p50, p95 = measure_latency_ms(Segmenter(slow_backend, 32), np.zeros((40, 60, 3), np.uint8), repeats=5)
    assert 0 < p50 <= p95


def test_a_gate_recorded_as_a_tag_reads_back_with_its_verdict():
    results = [scores_gate(0.92, 0.95, 0.9, 0.94), scores_gate(0.85, 0.90, 0.9, 0.94)]
    tags = {"data_version": "abc"} | {result.tag_key: result.tag for result in results[1:]}
    outcomes = gate_outcomes(tags)
    assert list(outcomes) == ["test_scores"] and verdict(outcomes["test_scores"]) == "failed"
    assert verdict(results[0].tag) == "passed"
