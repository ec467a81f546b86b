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
NO_REGRESSION = "no_regression"


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


BOOTSTRAP_RESAMPLES = 10_000


@dataclass(frozen=True)
class PairedComparison:
    """The challenger's IoU minus the champion's, photo by photo on the same photos: the mean difference and its
    bootstrap interval (the photos resampled with replacement, `resamples` times; the percentile interval)."""

    mean: float
    low: float
    high: float
    confidence: float
    photos: int

    def describe(self) -> str:
        return (
            f"IoU difference {self.mean:+.4f}, {self.confidence:.0%} interval [{self.low:+.4f}, {self.high:+.4f}] over "
            f"{self.photos} test photos"
        )


def paired_comparison(
    challenger: dict[str, float],
    champion: dict[str, float],
    confidence: float,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> PairedComparison:
    """Compare two models' per-photo IoUs (by photo name) on the same photos; the same seed gives the same interval."""
    if challenger.keys() != champion.keys() or not challenger:
        raise ValueError(
            f"a paired comparison needs both models scored on the same photos: {len(challenger)} and {len(champion)} "
            f"photos, {len(challenger.keys() ^ champion.keys())} scored by one only"
        )
    names = sorted(challenger)
    differences = np.array([challenger[name] - champion[name] for name in names])
    rng = np.random.default_rng(seed)
    sizes = [min(1000, resamples - start) for start in range(0, resamples, 1000)]  # 1000 resamples at a time: memory
    means = np.concatenate([differences[rng.integers(0, len(names), size=(size, len(names)))].mean(axis=1) for size in sizes])
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return PairedComparison(float(differences.mean()), float(low), float(high), confidence, len(names))


def regression_gate(comparison: PairedComparison | None, margin: float, champion: str | None) -> GateResult:
    """Not worse than the current champion: the lower end of the interval of the mean IoU difference (challenger minus
    champion, photo by photo on the same test split) at or above -`margin`. A challenger worse by more than the margin
    is refused however small the difference; one whose interval is too wide to tell is refused too."""
    if comparison is None:
        return GateResult(NO_REGRESSION, True, "no champion yet: nothing to regress from")
    passed = comparison.low >= -margin
    verdict = "not worse than" if passed else f"may be worse by more than the margin {margin} than"
    summary = f"{verdict} champion version {champion}: {comparison.describe()}, lower end {'>=' if passed else '<'} -{margin}"
    measurements = {
        "mean_iou_difference": comparison.mean,
        "interval_low": comparison.low,
        "interval_high": comparison.high,
        "confidence": comparison.confidence,
        "photos": comparison.photos,
    }
    return GateResult(NO_REGRESSION, passed, summary, measurements)


def onnx_parity_gate(gap: float, tolerance: float) -> GateResult:
    """ONNX Runtime's window probabilities within `tolerance` of PyTorch's."""
    passed = gap <= tolerance
    summary = f"largest probability gap {gap:.2e} {'<=' if passed else '>'} {tolerance:.0e}"
    return GateResult("onnx_parity", passed, summary, {"max_probability_gap": gap})


def latency_gate(p95_ms: float, p50_ms: float, budget_ms: float) -> GateResult:
    """p95 CPU latency of the exported model (both looks, pre- and post-processing) within the budget."""
    passed = p95_ms <= budget_ms
    summary = f"p95 {p95_ms:.1f} ms {'<=' if passed else '>'} budget {budget_ms:g} ms (p50 {p50_ms:.1f} ms)"
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
