"""wms/monitoring/dashboards.py: the serving dashboard of each stage, its panels, filters, ids, and the `wms dashboards` CLI."""

import json
import re

import pytest
import yaml
from click.testing import CliRunner

from tests.monitoring.test_prometheus_rules import RECORDING_RULES, RULES
from wms.monitoring.dashboards import DASHBOARD_STAGES, config_map, dashboard_json, expressions, serving_dashboard
from wms_cli.main import main

PANEL_TITLES = {
    "Request rate",
    "Error ratio",
    "Model version in service",
    "Latency percentiles",
    "Batch size",
    "GPU utilization",
    "GPU memory used",
    "Input brightness",
    "Input megapixels",
    "Window fraction",
    "Confidence",
}


def panels(document: dict) -> list[dict]:
    return [panel for panel in document["panels"] if panel["type"] != "row"]


@pytest.mark.parametrize("stage", list(DASHBOARD_STAGES))
def test_each_stage_has_the_serving_panels_under_its_own_uid_and_title(stage):
    document = serving_dashboard(stage)
    assert document["uid"] == f"wms-serving-{stage}" and stage in document["title"]
    assert {panel["title"] for panel in panels(document)} >= PANEL_TITLES
    assert [variable["name"] for variable in document["templating"]["list"]] == ["datasource", "model"]


@pytest.mark.parametrize("stage", list(DASHBOARD_STAGES))
def test_every_serving_query_carries_the_stage_filter_and_the_model_variable(stage):
    document = serving_dashboard(stage)
    targets = [target["expr"] for panel in panels(document) for target in panel["targets"]]
    serving = [expr for expr in targets if any(prefix in expr for prefix in ("wms_", "wms:", "ts_"))]
    assert serving and all(f'stage="{stage}"' in expr and '=~"$model"' in expr for expr in serving)
    others = {name for name in DASHBOARD_STAGES if name != stage}
    assert not any(f'stage="{other}"' in dashboard_json(stage) for other in others)


def test_the_panels_read_every_recording_rule():
    text = " ".join(expressions(serving_dashboard("prod")))
    for rule in RECORDING_RULES:
        assert f"{rule}{{" in text, rule


def test_every_recording_rule_a_panel_reads_is_in_the_rules_file():
    recorded = {
        rule["record"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"] if "record" in rule
    }
    used = set(re.findall(r"wms:[a-z_]+:[a-z0-9_]+", " ".join(expressions(serving_dashboard("prod")))))
    assert used and used <= recorded, used - recorded


def test_eks_stages_read_cpu_and_gpu_of_the_serving_pods_in_their_namespace():
    text = " ".join(expressions(serving_dashboard("staging")))
    for metric in (
        "container_cpu_usage_seconds_total",
        "kube_pod_container_resource_limits",
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
    ):
        assert f'{metric}{{namespace="model-staging", pod=~"wms-serving-.*"' in text, metric
    assert "model-prod" not in text


def test_local_reads_torchserve_system_metrics_instead_of_the_cluster_exporters():
    text = " ".join(expressions(serving_dashboard("local")))
    assert 'CPUUtilization{stage="local"}' in text and 'GPUUtilization{stage="local"}' in text
    assert "namespace=" not in text and "DCGM" not in text


def test_panels_have_unique_ids_and_every_target_a_ref_id():
    document = serving_dashboard("prod")
    ids = [panel["id"] for panel in document["panels"]]
    assert ids == list(range(1, len(ids) + 1))
    for panel in panels(document):
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids and len(set(ref_ids)) == len(ref_ids) and all(ref_ids)
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_the_model_version_stat_is_an_instant_query_by_version():
    [version] = [panel for panel in panels(serving_dashboard("prod")) if panel["title"] == "Model version in service"]
    assert version["type"] == "stat"
    [target] = version["targets"]
    assert target["instant"] is True and target["expr"].startswith("count by (model, model_version)")


def test_expressions_fill_the_model_variable_with_its_all_value():
    found = expressions(serving_dashboard("prod"))
    assert not any("$" in expr for expr in found)
    assert 'wms_requests_total{stage="prod"}' in found  # the model variable's label_values selector


def test_expressions_refuse_an_undefined_variable_and_an_uncheckable_variable_query():
    document = serving_dashboard("prod")
    document["panels"][1]["targets"][0]["expr"] = 'up{job="$nowhere"}'
    with pytest.raises(ValueError, match=r"\$nowhere"):
        expressions(document)
    document = serving_dashboard("prod")
    document["templating"]["list"][1]["query"] = "metrics(wms_.*)"
    with pytest.raises(ValueError, match="label_values"):
        expressions(document)


def test_unknown_stage_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="staging, prod, local"):
        serving_dashboard("qa")


def test_config_map_holds_the_dashboard_for_the_grafana_sidecar():
    manifest = config_map("staging")
    assert manifest["metadata"]["namespace"] == "model-staging"
    assert manifest["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(manifest["data"]["wms-serving-staging.json"]) == serving_dashboard("staging")
    with pytest.raises(ValueError, match="no Kubernetes namespace"):
        config_map("local")


def test_cli_export_writes_one_dashboard_per_stage_and_the_config_maps(tmp_path):
    result = CliRunner().invoke(
        main, ["dashboards", "export", "--output", str(tmp_path / "json"), "--config-maps", str(tmp_path / "maps")]
    )
    assert result.exit_code == 0, result.output
    for stage in DASHBOARD_STAGES:
        path = tmp_path / "json" / f"wms-serving-{stage}.json"
        assert str(path) in result.output
        assert json.loads(path.read_text()) == serving_dashboard(stage)
    maps = sorted(path.name for path in (tmp_path / "maps").iterdir())
    assert maps == ["wms-serving-prod-dashboard.yaml", "wms-serving-staging-dashboard.yaml"]
    assert yaml.safe_load((tmp_path / "maps" / maps[0]).read_text()) == config_map("prod")
