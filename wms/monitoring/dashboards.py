"""Grafana dashboards as code: one serving dashboard per stage (staging, prod, and local for the local profile).

Why code and not hand-edited JSON: the three dashboards are the same dashboard with a different `stage` filter, so
they are generated from one definition (grafana-foundation-sdk's builders) and cannot drift apart. The generated
JSON is committed under monitoring/grafana/dashboards/ (and wrapped in ConfigMaps for Grafana's sidecar under
monitoring/grafana/provisioning/); a test checks the committed files equal what this module generates.

The panels read the recording rules of monitoring/prometheus/rules.yml (group `wms-serving`, each summed by model,
model_version and stage) where there is one, and the handler's histograms (wms/inference/service_metrics.py) otherwise.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dashboard_models

from wms.deployment.stages import RELEASE_NAME, STAGES

DATASOURCE = dashboard_models.DataSourceRef(type_val="prometheus", uid="${datasource}")
"""Every panel asks the Prometheus that the `datasource` variable picks, so the JSON fits any Grafana."""
SERVING_CONTAINER = "torchserve"
"""The serving container's name in helm/wms-serving/templates/deployment.yaml (cAdvisor's `container` label)."""
MODEL_VARIABLE_ALL = ".*"
"""What `$model` becomes when every model is chosen; also the value the expressions are checked with."""
QUANTILES = (0.05, 0.5, 0.95)
"""The input histograms' quantiles drawn beside their means: a drift shows as the band moving or widening."""
RATE_WINDOW = "5m"
DRIFT_WINDOW = "1h"
"""Input statistics move slowly and are noisy per photo: an hour, as the `:mean_1h` recording rules."""


@dataclass(frozen=True)
class DashboardStage:
    """Where a dashboard looks: the `stage` label of the serving series, and the namespace on EKS (None locally)."""

    name: str
    namespace: str | None

    @property
    def uid(self) -> str:
        return f"wms-serving-{self.name}"

    @property
    def title(self) -> str:
        return f"WMS serving ({self.name})"

    @property
    def file_name(self) -> str:
        return f"{self.uid}.json"


DASHBOARD_STAGES: dict[str, DashboardStage] = {
    **{name: DashboardStage(name, stage.namespace) for name, stage in STAGES.items()},
    "local": DashboardStage("local", None),
}
"""The EKS stages of wms/deployment/stages.py, plus `local`: the static stage label of the local Prometheus' scrape config."""


def dashboard_stage(name: str) -> DashboardStage:
    if name not in DASHBOARD_STAGES:
        raise ValueError(f"unknown stage {name!r} for a dashboard: choose one of {', '.join(DASHBOARD_STAGES)}")
    return DASHBOARD_STAGES[name]


def serving_dashboard(stage_name: str) -> dict:
    """The serving dashboard of a stage, as the JSON object Grafana imports."""
    stage = dashboard_stage(stage_name)
    builder = (
        dashboard_builders.Dashboard(stage.title)
        .uid(stage.uid)
        .description(f"Requests, latency, batching, resources and input drift of the WMS model server, stage {stage.name}.")
        .tags(["wms", "serving", stage.name])
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .editable()
        .with_variable(_datasource_variable())
        .with_variable(_model_variable(stage))
    )
    rows = [
        ("Traffic", _traffic_panels(stage)),
        ("Latency and batching", _latency_panels(stage)),
        ("CPU and GPU", _resource_panels(stage)),
        ("Input drift", _drift_panels(stage)),
    ]
    for title, panels in rows:
        builder = builder.with_row(dashboard_builders.Row(title))
        for panel in panels:
            builder = builder.with_panel(panel)
    document = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    _number_panels(document)
    return document


def dashboard_json(stage_name: str) -> str:
    """The dashboard as stable text (sorted keys, two-space indent): what is committed and compared."""
    return json.dumps(serving_dashboard(stage_name), indent=2, sort_keys=True) + "\n"


def export(output: Path) -> list[Path]:
    """Write one dashboard JSON per stage into `output` (made if missing); returns the files."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, stage in DASHBOARD_STAGES.items():
        path = output / stage.file_name
        path.write_text(dashboard_json(name))
        written.append(path)
    return written


def config_map(stage_name: str) -> dict:
    """A ConfigMap holding the stage's dashboard, labelled for kube-prometheus-stack's Grafana sidecar.

    It lives in the stage's namespace beside the release, so the sidecar must search that namespace
    (`grafana.sidecar.dashboards.searchNamespace`); see monitoring/grafana/README.md.
    """
    stage = dashboard_stage(stage_name)
    if stage.namespace is None:
        raise ValueError(f"stage {stage.name!r} has no Kubernetes namespace: its dashboard is imported, not provisioned")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{stage.uid}-dashboard",
            "namespace": stage.namespace,
            "labels": {
                "grafana_dashboard": "1",
                "app.kubernetes.io/name": RELEASE_NAME,
                "app.kubernetes.io/component": "dashboard",
                "app.kubernetes.io/part-of": "wms",
            },
            "annotations": {"grafana_folder": "WMS"},
        },
        "data": {stage.file_name: dashboard_json(stage.name)},
    }


def export_config_maps(output: Path) -> list[Path]:
    """Write one ConfigMap manifest per EKS stage into `output`; returns the files."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, stage in DASHBOARD_STAGES.items():
        if stage.namespace is None:
            continue
        path = output / f"{stage.uid}-dashboard.yaml"
        path.write_text(yaml.dump(config_map(name), Dumper=_LiteralDumper, sort_keys=False, width=1_000_000))
        written.append(path)
    return written


def expressions(document: dict) -> list[str]:
    """Every PromQL expression a dashboard sends, template variables filled in as Grafana would with all chosen.

    Panel targets give theirs as they are; a query variable `label_values(SELECTOR, label)` or
    `query_result(EXPR)` gives its SELECTOR or EXPR.
    """
    values = _variable_values(document)
    found = [_interpolate(target["expr"], values) for panel in _panels(document) for target in panel.get("targets", [])]
    for variable in document.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            found.append(_interpolate(_variable_promql(variable), values))
    return found


# The panels ------------------------------------------------------------------------------------------------------


def _traffic_panels(stage: DashboardStage) -> list:
    selector = _selector(stage)
    return [
        _timeseries("Request rate", "Photos answered per second, by model version.", "reqps").with_target(
            _query(f"sum by (model, model_version) (wms:requests:rate5m{selector})", "{{model}} v{{model_version}}")
        ),
        _timeseries(
            "Error ratio",
            "Server-side failures over all requests (wms:request_errors:ratio_rate5m; client errors such as a photo "
            "that is not an image do not count).",
            "percentunit",
        ).with_target(_query(f"wms:request_errors:ratio_rate5m{selector}", "{{model}} v{{model_version}}")),
        _model_version_stat(stage),
        _timeseries(
            "Traffic share by version",
            "Each version's share of the answered requests (wms:traffic_share:ratio_rate5m): during a canary, the weights "
            "as the traffic shows them, stepping up to 100 % or back to 0.",
            "percentunit",
        ).with_target(_query(f"wms:traffic_share:ratio_rate5m{selector}", "{{model}} v{{model_version}}")),
    ]


def _model_version_stat(stage: DashboardStage):
    """The versions whose handler has answered in this stage; two during a rollout, one otherwise."""
    return (
        stat.Panel()
        .title("Model version in service")
        .description("Versions with live handler series in this stage (the handler's model_version label).")
        .datasource(DATASOURCE)
        .span(8)
        .height(8)
        .with_target(
            _query(
                f"count by (model, model_version) (wms_requests_total{_selector(stage)})", "{{model}} v{{model_version}}"
            ).instant()
        )
        .text_mode(common.BigValueTextMode.NAME)
        .color_mode(common.BigValueColorMode.NONE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
    )


def _latency_panels(stage: DashboardStage) -> list:
    selector = _selector(stage)
    latency = _timeseries("Latency percentiles", "Whole request in the handler, per photo.", "s")
    for percentile in ("p50", "p95", "p99"):
        latency = latency.with_target(
            _query(f"wms:request_latency_seconds:{percentile}_5m{selector}", f"{percentile} {{{{model}}}} v{{{{model_version}}}}")
        )
    batch = _timeseries("Batch size", "Requests per batch that TorchServe handed to the handler (batchSize 8).", "short")
    batch = batch.with_target(_query(f"wms:batch_size:mean_5m{selector}", "mean v{{model_version}}"))
    for quantile in (0.5, 0.95):
        batch = batch.with_target(
            _query(_histogram_quantile(quantile, "wms_batch_size", selector, RATE_WINDOW), f"q{quantile:g}")
        )
    queue = _timeseries("TorchServe queue time", "Mean time a request waited in TorchServe's queue before its batch.", "µs")
    ts_selector = _selector(stage, model_label="model_name")
    queue = queue.with_target(
        _query(
            f"sum by (model_name, model_version) (rate(ts_queue_latency_microseconds{ts_selector}[{RATE_WINDOW}]))"
            f" / sum by (model_name, model_version) (rate(ts_inference_requests_total{ts_selector}[{RATE_WINDOW}]))",
            "{{model_name}} v{{model_version}}",
        )
    )
    return [latency, batch, queue]


def _resource_panels(stage: DashboardStage) -> list:
    if stage.namespace is None:
        return _local_resource_panels(stage)
    pods = f'namespace="{stage.namespace}", pod=~"{RELEASE_NAME}-.*"'
    container = f'{pods}, container="{SERVING_CONTAINER}"'
    cpu = _timeseries(
        "CPU of the limit", "CPU used by each serving pod over its limit (cAdvisor, kube-state-metrics).", "percentunit"
    )
    cpu = cpu.with_target(
        _query(
            f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{container}}}[{RATE_WINDOW}]))"
            f' / sum by (pod) (kube_pod_container_resource_limits{{{container}, resource="cpu"}})',
            "{{pod}}",
        )
    )
    memory = _timeseries("Memory of the limit", "Working set of each serving pod over its memory limit.", "percentunit")
    memory = memory.with_target(
        _query(
            f"sum by (pod) (container_memory_working_set_bytes{{{container}}})"
            f' / sum by (pod) (kube_pod_container_resource_limits{{{container}, resource="memory"}})',
            "{{pod}}",
        )
    )
    gpu = _timeseries("GPU utilization", "DCGM exporter, per serving pod's GPU.", "percent")
    gpu = gpu.with_target(_query(f"avg by (pod, gpu) (DCGM_FI_DEV_GPU_UTIL{{{pods}}})", "{{pod}} GPU {{gpu}}"))
    gpu_memory = _timeseries("GPU memory used", "DCGM exporter: frame buffer in use, per serving pod's GPU.", "mbytes")
    gpu_memory = gpu_memory.with_target(_query(f"sum by (pod, gpu) (DCGM_FI_DEV_FB_USED{{{pods}}})", "{{pod}} GPU {{gpu}}"))
    return [cpu, memory, gpu, gpu_memory]


def _local_resource_panels(stage: DashboardStage) -> list:
    """Locally there is no cAdvisor or DCGM exporter: TorchServe's own system metrics, for the whole host."""
    selector = f'{{stage="{stage.name}"}}'
    cpu = _timeseries("Host CPU", "TorchServe's CPUUtilization: the whole machine, not only the server.", "percent")
    cpu = cpu.with_target(_query(f"max(CPUUtilization{selector})", "CPU"))
    memory = _timeseries("Host memory used", "TorchServe's MemoryUsed: the whole machine.", "decmbytes")
    memory = memory.with_target(_query(f"max(MemoryUsed{selector})", "memory used"))
    gpu = _timeseries("GPU utilization", "TorchServe's GPUUtilization, per device (empty without a GPU).", "percent")
    gpu = gpu.with_target(_query(f"max by (DeviceId) (GPUUtilization{selector})", "GPU {{DeviceId}}"))
    gpu_memory = _timeseries("GPU memory used", "TorchServe's GPUMemoryUsed, per device (empty without a GPU).", "decmbytes")
    gpu_memory = gpu_memory.with_target(_query(f"max by (DeviceId) (GPUMemoryUsed{selector})", "GPU {{DeviceId}}"))
    return [cpu, memory, gpu, gpu_memory]


def _drift_panels(stage: DashboardStage) -> list:
    selector = _selector(stage)
    inputs = [
        (
            "Input brightness",
            "Mean luma of the photos, 0 (black) to 255 (white).",
            "wms_input_brightness",
            "wms:input_brightness:mean_1h",
            "short",
        ),
        ("Input megapixels", "Size of the photos as sent.", "wms_input_megapixels", None, "short"),
        (
            "Window fraction",
            "Share of the photo in the predicted window (about 0.023 on the training photos).",
            "wms_window_fraction",
            "wms:window_fraction:mean_1h",
            "percentunit",
        ),
        ("Confidence", "Mean window probability of the answers.", "wms_confidence", "wms:confidence:mean_1h", "percentunit"),
    ]
    panels = []
    for title, description, histogram, recorded_mean, unit in inputs:
        mean = (
            f"{recorded_mean}{selector}"
            if recorded_mean
            else f"sum by (model, model_version) (rate({histogram}_sum{selector}[{DRIFT_WINDOW}]))"
            f" / sum by (model, model_version) (rate({histogram}_count{selector}[{DRIFT_WINDOW}]))"
        )
        panel = _timeseries(title, f"{description} Mean and quantiles over {DRIFT_WINDOW}.", unit).span(12)
        panel = panel.with_target(_query(mean, "mean v{{model_version}}"))
        for quantile in QUANTILES:
            panel = panel.with_target(_query(_histogram_quantile(quantile, histogram, selector, DRIFT_WINDOW), f"q{quantile:g}"))
        panels.append(panel)
    return panels


# Building blocks ---------------------------------------------------------------------------------------------------


def _selector(stage: DashboardStage, model_label: str = "model") -> str:
    """The stage filter every serving query carries, and the `model` variable's choice."""
    return f'{{stage="{stage.name}", {model_label}=~"$model"}}'


def _histogram_quantile(quantile: float, histogram: str, selector: str, window: str) -> str:
    return f"histogram_quantile({quantile:g}, sum by (le) (rate({histogram}_bucket{selector}[{window}])))"


def _timeseries(title: str, description: str, unit: str):
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(8)
        .height(8)
        .fill_opacity(10)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
    )


def _query(expression: str, legend: str):
    return prometheus.Dataquery().expr(expression).legend_format(legend)


def _datasource_variable():
    return dashboard_builders.DatasourceVariable("datasource").label("Prometheus").type("prometheus")


def _model_variable(stage: DashboardStage):
    """The registered models that answered in this stage (normally one, wms-unet)."""
    return (
        dashboard_builders.QueryVariable("model")
        .label("Model")
        .datasource(DATASOURCE)
        .query(f'label_values(wms_requests_total{{stage="{stage.name}"}}, model)')
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(MODEL_VARIABLE_ALL)
    )


def _number_panels(document: dict) -> None:
    """Give panels ids 1, 2, ... in order and targets refIds A, B, ...: the builders leave them 0 and empty."""
    for number, panel in enumerate(_panels(document), start=1):
        panel["id"] = number
        for index, target in enumerate(panel.get("targets", [])):
            target["refId"] = chr(ord("A") + index)


def _panels(document: dict) -> list[dict]:
    """Top-level panels and those inside rows, in order."""
    found = []
    for panel in document.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings (the dashboard JSON in a ConfigMap) as readable `|` blocks."""


def _represent_string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_LiteralDumper.add_representer(str, _represent_string)


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>.+),\s*\w+\s*\)\s*$", re.DOTALL)
_QUERY_RESULT = re.compile(r"^\s*query_result\(\s*(?P<expr>.+)\)\s*$", re.DOTALL)
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def _variable_promql(variable: dict) -> str:
    query = variable.get("query", "")
    query = query.get("query", "") if isinstance(query, dict) else query
    for pattern, group in ((_LABEL_VALUES, "selector"), (_QUERY_RESULT, "expr")):
        match = pattern.match(query)
        if match:
            return match.group(group)
    raise ValueError(
        f"template variable {variable.get('name')!r} has query {query!r}: use label_values(SELECTOR, label) or "
        "query_result(EXPR), the forms whose PromQL can be checked"
    )


def _variable_values(document: dict) -> dict[str, str]:
    return {variable["name"]: variable.get("allValue") or "" for variable in document.get("templating", {}).get("list", [])}


def _interpolate(expression: str, values: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise ValueError(f"expression {expression!r} uses ${name}, which the dashboard does not define as a variable")
        return values[name]

    return _VARIABLE.sub(value, expression)
