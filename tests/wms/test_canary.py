import pytest

from tests.conftest import free_port
from wms.canary import CanaryError, CanaryPolicy, VersionFigures, judge, read_figures, version_queries

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
