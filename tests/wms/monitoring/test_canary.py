import pytest

from tests.conftest import free_port
from wms.monitoring.canary import CanaryError, CanaryPolicy, VersionFigures, judge, read_figures, roll_out, version_queries

POLICY = CanaryPolicy(min_requests=30, max_error_ratio_increase=0.01, max_p95_ratio=1.5, p95_slack_s=0.05)
STABLE = VersionFigures("1", requests=200, server_errors=0, p95_s=0.200)


def test_a_candidate_within_tolerance_passes():
    verdict = judge(VersionFigures("2", 100, 1, 0.280), STABLE, POLICY)
    assert verdict.outcome == "pass" and "version 2: 100 requests" in verdict.reason


def test_too_few_requests_is_no_verdict_yet():
    assert judge(VersionFigures("2", 29, 29, 9.0), STABLE, POLICY).outcome == "wait"
    assert judge(VersionFigures("2", 100, 0, 0.2), VersionFigures("1", 10, 0, 0.2), POLICY).outcome == "wait"


def test_more_server_errors_fail_with_the_figures():
    verdict = judge(VersionFigures("2", 100, 5, 0.2), STABLE, POLICY)
    assert verdict.outcome == "fail" and "error ratio more than 0.01" in verdict.reason
    assert "error ratio 0.050" in verdict.reason and "error ratio 0.000" in verdict.reason


def test_a_slower_candidate_fails_and_fast_noise_does_not():
    assert judge(VersionFigures("2", 100, 0, 0.400), STABLE, POLICY).outcome == "fail"
    fast = VersionFigures("1", 200, 0, 0.010)
    assert judge(VersionFigures("2", 100, 0, 0.050), fast, POLICY).outcome == "pass"  # within 50 ms of slack


@pytest.mark.parametrize(
    "settings",
    [{"steps": (10, 50)}, {"steps": (50, 10, 100)}, {"steps": (0, 100)}, {"steps": ()}, {"max_p95_ratio": 0.5}],
)
def test_a_policy_that_cannot_work_is_refused(settings):
    with pytest.raises(ValueError):
        CanaryPolicy(**settings)


def test_the_queries_read_one_version_of_the_handler_s_metrics():
    queries = version_queries("wms-unet", "7", 120)
    assert queries["requests"] == 'sum(increase(wms_requests_total{model="wms-unet", model_version="7"}[120s]))'
    assert 'outcome=~"internal_error"' in queries["server_errors"]
    assert queries["p95_s"].startswith("histogram_quantile(0.95, sum by (le) (rate(wms_request_seconds_bucket{")


def test_a_prometheus_that_does_not_answer_is_a_clear_error():
    with pytest.raises(CanaryError, match="did not answer"):
        read_figures(f"http://127.0.0.1:{free_port()}", "wms-unet", "2", 60)


class Clock:
    """Time that passes only when the roll-out sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def __call__(self) -> float:
        return self.now


class Split:
    def __init__(self) -> None:
        self.weights: list[int] = []

    def set_weight(self, weight: int) -> None:
        self.weights.append(weight)


def reader(figures_at, split: Split):
    """Figures that depend on the weight in force: figures_at(weight) -> {version: VersionFigures}."""
    return lambda version: figures_at(split.weights[-1])[version]


FAST_POLICY = CanaryPolicy(window_s=60, min_requests=30, interval_s=10, max_step_s=120)


def shares(weight: int, candidate_errors: float = 0.0, candidate_p95: float = 0.2) -> dict[str, VersionFigures]:
    """400 requests a window, split by the weight."""
    to_candidate = 4 * weight
    return {
        "2": VersionFigures("2", to_candidate, to_candidate * candidate_errors, candidate_p95 if to_candidate else None),
        "1": VersionFigures("1", 400 - to_candidate, 0, 0.2 if to_candidate < 400 else None),
    }


def test_a_good_candidate_passes_every_step_judged_at_100_percent_against_the_step_before():
    split, clock = Split(), Clock()
    report = roll_out(split, reader(shares, split), "2", "1", FAST_POLICY, sleep=clock.sleep, clock=clock)
    assert report.passed and split.weights == [10, 50, 100]
    assert [step.verdict.outcome for step in report.steps] == ["pass", "pass", "pass"]
    assert report.steps[-1].in_service.requests == 0, "nothing goes to the version in service at 100 %"
    assert "| 100 % | pass |" in report.table()


def test_a_candidate_that_fails_stops_the_roll_out_at_that_step():
    split, clock = Split(), Clock()
    report = roll_out(
        split, reader(lambda w: shares(w, candidate_errors=0.2), split), "2", "1", FAST_POLICY, sleep=clock.sleep, clock=clock
    )
    assert not report.passed and split.weights == [10]
    assert "error ratio 0.200" in report.last.verdict.reason


def test_a_slow_candidate_fails_at_the_first_step():
    split, clock = Split(), Clock()
    report = roll_out(
        split, reader(lambda w: shares(w, candidate_p95=0.9), split), "2", "1", FAST_POLICY, sleep=clock.sleep, clock=clock
    )
    assert not report.passed and "p95 above 300 ms" in report.last.verdict.reason


def test_a_step_without_enough_traffic_is_stuck_and_fails_after_the_policy_s_limit():
    split, clock = Split(), Clock()
    quiet = {"2": VersionFigures("2", 3, 0, 0.2), "1": VersionFigures("1", 27, 0, 0.2)}
    report = roll_out(split, lambda version: quiet[version], "2", "1", FAST_POLICY, sleep=clock.sleep, clock=clock)
    assert not report.passed and report.last.verdict.reason.startswith("stuck at 10 % for 120 s")
    assert clock.now <= FAST_POLICY.max_step_s


def test_a_prometheus_that_stops_answering_mid_way_leaves_the_step_without_a_verdict_until_it_is_stuck():
    split, clock = Split(), Clock()

    def silent(version):
        raise CanaryError("Prometheus at http://127.0.0.1:9 did not answer")

    report = roll_out(split, silent, "2", "1", FAST_POLICY, sleep=clock.sleep, clock=clock)
    assert not report.passed and "did not answer" in report.last.verdict.reason and split.weights == [10]
