"""The Prometheus rules (monitoring/prometheus/rules.yml) checked and unit-tested by promtool, the Debian package's
own tool, and the one source of truth behind them: the chart's copy is the same file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.cloud import ROOT
from wms.monitoring.canary import CanaryPolicy

PROMETHEUS_DIR = ROOT / "monitoring" / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
CHART_RULES = ROOT / "helm" / "wms-serving" / "files" / "prometheus-rules.yml"
RECORDING_RULES = {
    "wms:requests:rate5m",
    "wms:request_errors:ratio_rate5m",
    "wms:request_latency_seconds:p50_5m",
    "wms:request_latency_seconds:p95_5m",
    "wms:request_latency_seconds:p99_5m",
    "wms:batch_size:mean_5m",
    "wms:input_brightness:mean_1h",
    "wms:window_fraction:mean_1h",
    "wms:confidence:mean_1h",
}
"""The names the dashboards and the drift checks use (decided for issue 7)."""


def promtool(*arguments: str) -> subprocess.CompletedProcess:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run `make install` (scripts/install.sh installs Debian's prometheus package)")
    return subprocess.run([path, *arguments], capture_output=True, text=True, cwd=PROMETHEUS_DIR)


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_check_rules_passes():
    completed = promtool("check", "rules", str(RULES))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "SUCCESS" in completed.stdout


def test_promtool_unit_tests_pass():
    tests = sorted(path.name for path in (PROMETHEUS_DIR / "tests").glob("*.yml"))
    assert tests == ["alerts.yml", "recording.yml"]
    completed = promtool("test", "rules", *(f"tests/{name}" for name in tests))
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_promtool_unit_tests_can_fail(tmp_path):
    """A rule changed under the tests fails them: the tests really compare values."""
    changed = tmp_path / "rules.yml"
    changed.write_text(RULES.read_text().replace("histogram_quantile(0.95,", "histogram_quantile(0.90,"))
    test = tmp_path / "recording.yml"
    test.write_text((PROMETHEUS_DIR / "tests" / "recording.yml").read_text().replace("../rules.yml", str(changed)))
    completed = promtool("test", "rules", str(test))
    assert completed.returncode != 0 and "p95_5m" in completed.stdout + completed.stderr


def test_the_decided_recording_rules_are_there_per_model_version_and_stage():
    recorded = {rule["record"]: rule["expr"] for rule in rules() if "record" in rule}
    assert set(recorded) >= RECORDING_RULES
    for name in RECORDING_RULES:
        assert "by (model, model_version, stage)" in recorded[name] or "by (le, model, model_version, stage)" in recorded[name]


def test_every_alert_has_a_severity_and_runbook_text():
    alerts = [rule for rule in rules() if "alert" in rule]
    assert {rule["alert"] for rule in alerts} == {
        "WMSErrorBudgetBurnFast",
        "WMSErrorBudgetBurnSlow",
        "WMSLatencyP99OverObjective",
        "WMSLatencyP95OverObjective",
        "WMSNoTraffic",
        "WMSModelNotLoaded",
        "WMSServingAbsent",
        "WMSPodRestarting",
        "WMSGPUMemoryHigh",
        "WMSCanaryStuck",
    }
    for rule in alerts:
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description", "runbook"}, rule["alert"]
        assert "Look at:" in rule["annotations"]["runbook"] and "Do:" in rule["annotations"]["runbook"], rule["alert"]


def test_the_stuck_canary_alert_waits_as_long_as_a_canary_s_step_may_last():
    (rule,) = [rule for rule in rules() if rule.get("alert") == "WMSCanaryStuck"]
    assert f"offset {CanaryPolicy().max_step_s // 60}m" in rule["expr"]


def test_the_rules_have_one_source_the_chart_file():
    """monitoring/prometheus/rules.yml is a link to the chart's file (Helm reads nothing outside the chart)."""
    assert RULES.is_symlink(), "monitoring/prometheus/rules.yml must stay a link to the chart's prometheus-rules.yml"
    assert RULES.resolve() == CHART_RULES.resolve()
    assert Path(RULES.readlink()) == Path("../../helm/wms-serving/files/prometheus-rules.yml"), "a relative link"
