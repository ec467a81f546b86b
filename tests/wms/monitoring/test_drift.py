import math

import numpy as np
import pytest

from tests.conftest import free_port
from wms.data.pairs import Pair
from wms.monitoring.drift import STATISTICS, Histogram, PrometheusError, compare, psi, served_histograms, training_histograms

EDGES = (1.0, 2.0, 3.0)


def test_values_fall_in_the_bucket_whose_upper_bound_holds_them_as_prometheus_counts():
    histogram = Histogram.of([0.5, 1.0, 1.5, 3.0, 7.0], EDGES)

    assert histogram.counts == (2.0, 1.0, 1.0, 1.0)


def test_prometheus_cumulative_buckets_become_counts_per_bucket():
    histogram = Histogram.from_cumulative({1.0: 2.0, 2.0: 3.0, 3.0: 4.0, math.inf: 5.0})

    assert histogram == Histogram.of([0.5, 1.0, 1.5, 3.0, 7.0], EDGES)


def test_a_histogram_without_its_inf_bucket_is_refused():
    with pytest.raises(ValueError, match=r"\+Inf"):
        Histogram.from_cumulative({1.0: 2.0, 2.0: 3.0})


def test_the_same_distribution_scores_zero_and_a_shift_scores_above_the_usual_threshold():
    rng = np.random.default_rng(0)
    training = Histogram.of(rng.normal(1.5, 0.5, 2000), EDGES)
    same = Histogram.of(rng.normal(1.5, 0.5, 2000), EDGES)
    darker = Histogram.of(rng.normal(0.6, 0.5, 2000), EDGES)

    assert psi(training, same) < 0.02
    assert psi(training, darker) > 0.25


def test_histograms_over_different_buckets_cannot_be_compared():
    with pytest.raises(ValueError, match="different buckets"):
        psi(Histogram.of([1], EDGES), Histogram.of([1], (1.0, 2.0)))


def test_no_verdict_without_enough_served_photos():
    training = {name: Histogram.of([edges[0]] * 50, edges) for name, (_, edges) in STATISTICS.items()}
    served = {name: Histogram.of([edges[-1] * 2] * 10, edges) for name, (_, edges) in STATISTICS.items()}

    report = compare(training, served, min_photos=100)

    assert report.drifted == [] and not report.enough_traffic
    assert "no verdict" in report.summary()
    assert compare(training, served, min_photos=5).drifted == list(STATISTICS)


def test_training_statistics_are_computed_like_the_handler_computes_them(synthetic_root):
    pairs = [
        Pair(image=path, mask=synthetic_root / "masks" / path.name) for path in sorted((synthetic_root / "images").iterdir())
    ]

    histograms = training_histograms(pairs[:12])

    assert all(histogram.total == 12 for histogram in histograms.values())
    assert histograms["window_fraction"].counts[-1] == 0, "a digit window never covers half a photo"


def test_an_absent_prometheus_is_named_with_its_address():
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(PrometheusError, match=f"Prometheus at {url} did not answer"):
        served_histograms(url, 'stage="local"', timeout_s=2)
