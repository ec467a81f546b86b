"""The promotion gates: what a model version must show before it becomes champion. Plain functions, no Dagster.

Each gate turns measurements into a GateResult whose summary says, in one line, why it passed or failed; the
summary is what lands on the registered version as a tag and in the Dagster UI.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from wms.inference.predict import Segmenter

GATE_TAG_PREFIX = "gate."
"""Tags of a version, one per blocking gate: `gate.<name>` = 'passed: ...' or 'failed: ...' (GateResult.tag)."""
PASSED, FAILED = "passed", "failed"


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    summary: str
    measurements: dict[str, float] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return f"{PASSED if self.passed else FAILED}: {self.summary}"

    @property
    def tag_key(self) -> str:
        return f"{GATE_TAG_PREFIX}{self.name}"


def gate_outcomes(version_tags: dict[str, str]) -> dict[str, str]:
    """The gate results among a version's tags, by gate name ('passed: ...' or 'failed: ...')."""
    return {key.removeprefix(GATE_TAG_PREFIX): value for key, value in version_tags.items() if key.startswith(GATE_TAG_PREFIX)}


def verdict(outcome: str) -> str:
    """'passed' or 'failed', from a gate tag's value."""
    return outcome.partition(":")[0]


def scores_gate(iou: float, dice: float, min_iou: float, min_dice: float) -> GateResult:
    """Mean per-image IoU and Dice on the test split at or above their minimums."""
    failures = [
        f"{name} {value:.4f} < {minimum}"
        for name, value, minimum in (("IoU", iou, min_iou), ("Dice", dice, min_dice))
        if value < minimum
    ]
    summary = "; ".join(failures) or f"IoU {iou:.4f} >= {min_iou}, Dice {dice:.4f} >= {min_dice}"
    return GateResult("test_scores", not failures, summary, {"test_mean_iou": iou, "test_mean_dice": dice})


def regression_gate(challenger_iou: float, champion_iou: float | None, tolerance: float, champion: str | None) -> GateResult:
    """No worse than the current champion by more than `tolerance` IoU, both measured on the same test split."""
    if champion_iou is None:
        return GateResult("no_regression", True, "no champion yet: nothing to regress from", {"challenger_iou": challenger_iou})
    drop = champion_iou - challenger_iou
    passed = drop <= tolerance
    comparison = f"IoU {challenger_iou:.4f} vs champion version {champion}'s {champion_iou:.4f} on the same test split"
    summary = comparison + (f" (drop {drop:.4f} within {tolerance})" if passed else f": drop {drop:.4f} > tolerance {tolerance}")
    return GateResult(
        "no_regression", passed, summary, {"challenger_iou": challenger_iou, "champion_iou": champion_iou, "drop": drop}
    )


def onnx_parity_gate(gap: float, tolerance: float) -> GateResult:
    """ONNX Runtime's window probabilities within `tolerance` of PyTorch's."""
    passed = gap <= tolerance
    summary = f"largest probability gap {gap:.2e} {'<=' if passed else '>'} {tolerance:.0e}"
    return GateResult("onnx_parity", passed, summary, {"max_probability_gap": gap})


def latency_gate(p95_ms: float, p50_ms: float, budget_ms: float) -> GateResult:
    """p95 CPU latency of the exported model (both looks, pre- and post-processing) within the budget."""
    passed = p95_ms <= budget_ms
    summary = f"p95 {p95_ms:.1f} ms {'<=' if passed else '>'} budget {budget_ms:.0f} ms (p50 {p50_ms:.1f} ms)"
    return GateResult("cpu_latency", passed, summary, {"p95_ms": p95_ms, "p50_ms": p50_ms})


def measure_latency_ms(segmenter: Segmenter, photo: np.ndarray, repeats: int = 30, warmup: int = 3) -> tuple[float, float]:
    """p50 and p95 of the time from photo to mask, in milliseconds, one photo at a time."""
    timings = []
    for index in range(warmup + repeats):
        started = time.perf_counter()
        segmenter.mask(photo)
        if index >= warmup:
            timings.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(timings, 50)), float(np.percentile(timings, 95))
