"""Input drift: are the photos the service sees like the photos the model was trained on?

Both sides become histograms over the service's own buckets (wms.inference.service_metrics). The training photos' statistics
are computed with the functions the handler uses; the served ones are read from Prometheus as bucket counts over a
window. The population stability index (PSI) of each statistic says how far apart the two are; the usual reading:
under 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a shift worth a look.
"""

from __future__ import annotations

import itertools
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from wms.data.pairs import Pair
from wms.inference.imaging import read_mask, read_photo
from wms.inference.service_metrics import BRIGHTNESS_BUCKETS, FRACTION_BUCKETS, MEGAPIXEL_BUCKETS, luma

STATISTICS: dict[str, tuple[str, tuple[float, ...]]] = {
    "brightness": ("wms_input_brightness", tuple(float(edge) for edge in BRIGHTNESS_BUCKETS)),
    "megapixels": ("wms_input_megapixels", tuple(float(edge) for edge in MEGAPIXEL_BUCKETS)),
    "window_fraction": ("wms_window_fraction", tuple(float(edge) for edge in FRACTION_BUCKETS)),
}
"""Each compared statistic: the handler's histogram family and its bucket upper bounds (+Inf implied)."""
SHARE_FLOOR = 1e-4
"""An empty bucket counts as this share, so that the PSI stays finite (the usual smoothing)."""


class PrometheusError(RuntimeError):
    """Prometheus did not answer a query; the message says where and why."""


@dataclass(frozen=True)
class Histogram:
    """Counts per bucket: counts[i] for values <= edges[i] (and above edges[i-1]); the last count is above every edge."""

    edges: tuple[float, ...]
    counts: tuple[float, ...]

    @classmethod
    def of(cls, values: Iterable[float], edges: tuple[float, ...]) -> Histogram:
        counts = np.zeros(len(edges) + 1)
        for value in values:
            counts[int(np.searchsorted(edges, value, side="left"))] += 1
        return cls(edges, tuple(counts.tolist()))

    @classmethod
    def from_cumulative(cls, cumulative: dict[float, float]) -> Histogram:
        """From Prometheus buckets {le: count up to le} (le +Inf included), as `sum by (le)` returns them."""
        bounds = sorted(cumulative)
        if not bounds or not math.isinf(bounds[-1]):
            raise ValueError(f"a Prometheus histogram needs its +Inf bucket: got the bounds {bounds}")
        running = [cumulative[bound] for bound in bounds]
        counts = [running[0]] + [max(0.0, later - earlier) for earlier, later in itertools.pairwise(running)]
        return cls(tuple(bounds[:-1]), tuple(counts))

    @property
    def total(self) -> float:
        return float(sum(self.counts))

    def shares(self) -> np.ndarray:
        counts = np.asarray(self.counts, dtype=float)
        shares = counts / counts.sum() if counts.sum() else np.full(len(counts), 1 / len(counts))
        shares = np.maximum(shares, SHARE_FLOOR)
        return shares / shares.sum()


def psi(expected: Histogram, actual: Histogram) -> float:
    """Population stability index of `actual` against `expected` over the same buckets."""
    if expected.edges != actual.edges:
        raise ValueError(f"the histograms have different buckets: {expected.edges} and {actual.edges}")
    reference, seen = expected.shares(), actual.shares()
    return float(np.sum((seen - reference) * np.log(seen / reference)))


def training_histograms(pairs: Iterable[Pair]) -> dict[str, Histogram]:
    """The training photos' statistics, computed as the handler computes them for a served photo."""
    values: dict[str, list[float]] = {name: [] for name in STATISTICS}
    for pair in pairs:
        photo = read_photo(pair.image)
        values["brightness"].append(float(luma(photo).mean()))
        values["megapixels"].append(photo.shape[0] * photo.shape[1] / 1e6)
        values["window_fraction"].append(float((read_mask(pair.mask) > 0).mean()))
    return {name: Histogram.of(values[name], edges) for name, (_, edges) in STATISTICS.items()}


@dataclass(frozen=True)
class DriftReport:
    psi: dict[str, float]
    served_photos: float
    threshold: float
    min_photos: int
    drifted: list[str] = field(default_factory=list)

    @property
    def enough_traffic(self) -> bool:
        return self.served_photos >= self.min_photos

    def summary(self) -> str:
        if not self.enough_traffic:
            return f"{self.served_photos:.0f} photos served in the window, fewer than {self.min_photos}: no verdict"
        scores = ", ".join(f"{name} {value:.3f}" for name, value in self.psi.items())
        verdict = f"drift in {', '.join(self.drifted)}" if self.drifted else "no drift"
        return f"{verdict} (PSI {scores}; threshold {self.threshold}) over {self.served_photos:.0f} photos"


def compare(
    training: dict[str, Histogram], served: dict[str, Histogram], threshold: float = 0.25, min_photos: int = 100
) -> DriftReport:
    """PSI of each statistic; a statistic drifted when its PSI is above the threshold and enough photos were served."""
    scores = {name: psi(training[name], served[name]) for name in STATISTICS}
    photos = served["brightness"].total
    drifted = [name for name, value in scores.items() if value > threshold] if photos >= min_photos else []
    return DriftReport(scores, photos, threshold, min_photos, drifted)


def served_histograms(prometheus_url: str, selector: str, window: str = "1d", timeout_s: float = 30.0) -> dict[str, Histogram]:
    """The served photos' statistics over the window, from the handler's histograms in Prometheus.

    `selector` filters the series, e.g. 'stage="prod",model="wms-unet"'.
    """
    histograms = {}
    for name, (family, _) in STATISTICS.items():
        query = f"sum by (le) (increase({family}_bucket{{{selector}}}[{window}]))"
        result = _query(prometheus_url, query, timeout_s)
        cumulative = {float(sample["metric"]["le"]): float(sample["value"][1]) for sample in result}
        histograms[name] = Histogram.from_cumulative(cumulative) if cumulative else Histogram.of([], STATISTICS[name][1])
    return histograms


def _query(prometheus_url: str, query: str, timeout_s: float) -> list[dict]:
    url = f"{prometheus_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            answer = json.load(response)
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as error:
        reason = getattr(error, "reason", error)
        raise PrometheusError(f"Prometheus at {prometheus_url} did not answer {query!r}: {reason}") from error
    if answer.get("status") != "success":
        raise PrometheusError(f"Prometheus at {prometheus_url} refused {query!r}: {answer.get('error')}")
    return answer["data"]["result"]
