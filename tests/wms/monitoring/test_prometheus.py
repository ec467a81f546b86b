"""The local Prometheus (wms.monitoring.prometheus): its rendered config, a real start and stop, and its refusals."""

from __future__ import annotations

import socket
import urllib.request

import pytest
import yaml

from tests.conftest import free_port
from wms.monitoring.prometheus import RULES, LocalPrometheus, MonitoringError


def test_the_config_scrapes_both_local_ports_with_the_labels_the_rules_expect(tmp_path):
    prometheus = LocalPrometheus(tmp_path, ts_metrics_port=18082, handler_metrics_port=18083, scrape_interval="1s")
    config = yaml.safe_load(prometheus.render_config().read_text())
    assert config["global"]["scrape_interval"] == "1s"
    assert config["rule_files"] == [str(RULES.resolve())]
    [job] = config["scrape_configs"]
    targets = {target["targets"][0]: target["labels"] for target in job["static_configs"]}
    assert targets == {
        "127.0.0.1:18082": {"stage": "local", "pod": "local", "endpoint": "ts-metrics"},
        "127.0.0.1:18083": {"stage": "local", "pod": "local", "endpoint": "handler-metrics"},
    }


def test_a_real_prometheus_starts_loads_the_rules_and_stops(tmp_path):
    prometheus = LocalPrometheus(tmp_path, port=free_port())
    prometheus.start()
    try:
        assert prometheus.running() and prometheus.is_ready()
        with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules") as response:
            groups = yaml.safe_load(response.read())["data"]["groups"]
        assert {group["name"] for group in groups} == {"wms-serving", "wms-serving-alerts"}
        with pytest.raises(MonitoringError, match="already runs"):
            prometheus.start()
    finally:
        assert prometheus.stop()
    assert not prometheus.running() and not prometheus.stop()


def test_a_taken_port_is_refused_with_a_clear_message(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(MonitoringError, match=f"port {port} on 127.0.0.1 is taken: pick another with --port"):
            LocalPrometheus(tmp_path, port=port).start()


def test_rules_that_are_not_there_are_named_before_anything_starts(tmp_path):
    prometheus = LocalPrometheus(tmp_path / "home", port=free_port(), rules_file=tmp_path / "missing.yml")
    with pytest.raises(MonitoringError, match=r"no Prometheus rules at .*missing\.yml: run from a checkout"):
        prometheus.start()
    assert not (tmp_path / "home").exists() and not prometheus.running()
