"""The serving chart (helm/wms-serving), rendered for both stages and checked offline with the strongest tools there
are without a cluster: kubernetes-validate --strict at Terraform's EKS version, helm lint --strict, checkov, the
ServiceMonitor CRD's schema, and what the serving image (serving/) expects of its pod. Then Dagster's own values
(helm/dagster/values.yaml) for the official chart, which cannot be downloaded here."""

from __future__ import annotations

import copy
import importlib.metadata
import json
import re
from pathlib import Path

import helm_python as helm
import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as kubernetes_schemas

from tests.cloud import ROOT, checkov, eks_version, kubernetes_validate
from wms.deployment import helm_release
from wms.deployment.container_image import CHART_PROPERTIES, IMAGE_PROPERTIES
from wms.deployment.stages import CHART_DIR, GPU_NODE_LABEL, GPU_TAINT, RELEASE_NAME, STAGES, TOKEN_SECRET

CHART = ROOT / CHART_DIR
DIGEST = "sha256:" + "0123456789abcdef" * 4
REPOSITORY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/wms-serving"
IMAGE = f"{REPOSITORY}@{DIGEST}"
VERSION = "7"
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): Path(__file__).with_name("servicemonitor.schema.json"),
    ("monitoring.coreos.com/v1", "PrometheusRule"): Path(__file__).with_name("prometheusrule.schema.json"),
}
"""Custom resources, which kubernetes-validate cannot check (it warns and passes them), and the schema each gets."""
EXPECTED_KINDS = {
    "ServiceAccount",
    "ConfigMap",
    "Service",
    "Deployment",
    "Ingress",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "ServiceMonitor",
}
RULES_STAGE = "prod"
"""The stage whose release carries the PrometheusRule (prometheusRule.stage): the rules cover every stage."""
RULES_FILE = ROOT / "monitoring" / "prometheus" / "rules.yml"


def expected_kinds(stage_name: str) -> set[str]:
    return EXPECTED_KINDS | ({"PrometheusRule"} if stage_name == RULES_STAGE else set())


def parse(manifests: dict[str, str]) -> list[dict]:
    return [document for text in manifests.values() for document in yaml.safe_load_all(text) if document]


def one(objects: list[dict], kind: str) -> dict:
    """The one object of a kind; the Grafana dashboard's ConfigMap is left out of the ConfigMaps (it has its own test)."""
    [found] = [item for item in objects if item["kind"] == kind and not is_dashboard(item)]
    return found


def is_dashboard(item: dict) -> bool:
    return item["kind"] == "ConfigMap" and "grafana_dashboard" in item["metadata"].get("labels", {})


def container(objects: list[dict]) -> dict:
    [serving] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return serving


def chart_values(stage_name: str, **overrides) -> dict:
    """A release's values (as wms.deployment.helm_release makes them) with some keys laid over, for the chart's own checks."""
    values = helm_release.release_values(stage_name, VERSION, IMAGE)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = values
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return values


def render_chart(values: dict, namespace: str) -> list[dict]:
    with helm.Chart.load(CHART) as chart:
        return parse(chart.render(values, name=RELEASE_NAME, namespace=namespace))


def render_error(values: dict, namespace: str) -> str:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError) as failure:
        chart.render(values, name=RELEASE_NAME, namespace=namespace)
    return failure.value.detail


@pytest.fixture(scope="module", params=list(STAGES))
def stage_name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def manifests(stage_name) -> dict[str, str]:
    return helm_release.render(stage_name, VERSION, IMAGE)


@pytest.fixture(scope="module")
def objects(manifests) -> list[dict]:
    return parse(manifests)


# --- the whole release, per stage ---------------------------------------------------------------------------------


def test_each_stage_renders_the_whole_release_into_its_namespace(stage_name, objects):
    assert {item["kind"] for item in objects} == expected_kinds(stage_name)
    assert len(objects) == len(expected_kinds(stage_name)) + 1, "two ConfigMaps: config.properties and the dashboard"
    assert {item["metadata"]["namespace"] for item in objects} == {STAGES[stage_name].namespace}
    for item in objects:
        assert item["metadata"]["labels"]["wms.io/model-version"] == VERSION
        assert item["metadata"]["labels"]["wms.io/stage"] == stage_name


def test_built_in_objects_pass_kubernetes_validate_strict_at_the_eks_version(objects, tmp_path):
    built_in = [item for item in objects if (item["apiVersion"], item["kind"]) not in CRD_SCHEMAS]
    files = []
    for item in built_in:
        path = tmp_path / f"{item['kind'].lower()}.yaml"
        path.write_text(yaml.safe_dump(item))
        files.append(path)
    kubernetes_validate(files)
    # kubernetes-validate passes a kind it has no schema for with a mere warning: make sure none slipped through.
    for item in built_in:
        kubernetes_schemas.validate(item, f"{eks_version()}.0", strict=True)


def test_custom_resources_are_checked_against_their_crd_schema_instead(objects):
    custom = [item for item in objects if (item["apiVersion"], item["kind"]) in CRD_SCHEMAS]
    assert custom, "the release has its ServiceMonitor"
    for item in custom:
        with pytest.raises(kubernetes_schemas.SchemaNotFoundError):
            kubernetes_schemas.validate(item, f"{eks_version()}.0", strict=True)
        schema = json.loads(CRD_SCHEMAS[item["apiVersion"], item["kind"]].read_text())
        jsonschema.Draft202012Validator(schema).validate(item)


def test_the_crd_schema_rejects_a_misspelt_field(objects):
    monitor = copy.deepcopy(one(objects, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    schema = json.loads(CRD_SCHEMAS["monitoring.coreos.com/v1", "ServiceMonitor"].read_text())
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        jsonschema.Draft202012Validator(schema).validate(monitor)


def test_helm_lint_strict_passes_at_the_eks_version(stage_name):
    report = helm.lint(
        CHART,
        chart_values(stage_name),
        strict=True,
        namespace=STAGES[stage_name].namespace,
        kube_version=f"v{eks_version()}.0",
    )
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    assert [message for message in report["messages"] if message["severity"] >= 2] == []


def test_checkov_finds_no_failed_check_and_every_skip_says_why(manifests, objects, tmp_path):
    helm_release.write_manifests(manifests, tmp_path / "manifests")
    report = checkov(tmp_path / "manifests", "kubernetes")
    assert report["results"]["failed_checks"] == []
    skips = {
        match.group(1): match.group(2)
        for item in objects
        for key, value in item["metadata"].get("annotations", {}).items()
        if key.startswith("checkov.io/skip")
        for match in [re.fullmatch(r"(CKV2?_K8S_\d+)=(.+)", value)]
        if match
    }
    summary = report["summary"]
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0
    assert summary["passed"] >= 50, "checkov ran its Kubernetes checks"
    assert summary["skipped"] == len(skips), "each skip annotation was read by checkov"
    documented = (ROOT / "helm" / "README.md").read_text()
    for check, reason in skips.items():
        assert len(reason) >= 60, f"{check}: a skip needs a reason"
        assert check in documented, f"{check} is skipped but not listed in helm/README.md"


# --- what the serving image expects of its pod ---------------------------------------------------------------------


def dockerfile_env() -> dict[str, str]:
    """The image's environment: every ENV instruction, later ones over earlier ones."""
    text = (ROOT / "serving" / "Dockerfile").read_text().replace("\\\n", " ")
    blocks = re.findall(r"^ENV (.+)$", text, flags=re.MULTILINE)
    return dict(pair.split("=", 1) for block in blocks for pair in block.split())


def dockerfile_user() -> tuple[int, int]:
    [(uid, gid)] = re.findall(r"^USER (\d+):(\d+)$", (ROOT / "serving" / "Dockerfile").read_text(), flags=re.MULTILINE)
    return int(uid), int(gid)


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_the_pod_runs_the_pinned_image_as_the_image_expects(objects):
    serving = container(objects)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert serving["image"] == IMAGE
    assert {port["name"]: port["containerPort"] for port in serving["ports"]} == {
        "http": 8080,
        "ts-metrics": 8082,
        "handler-metrics": 8083,
    }
    env = {item["name"]: item["value"] for item in serving["env"]}
    image_env = dockerfile_env()
    for name in ("WMS_API_KEY_FILE", "WMS_HANDLER_METRICS_PORT", "PROMETHEUS_MULTIPROC_DIR"):
        assert env[name] == image_env[name], name
    uid, gid = dockerfile_user()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
    assert (serving["securityContext"]["runAsUser"], serving["securityContext"]["runAsGroup"]) == (uid, gid)
    assert serving["securityContext"]["readOnlyRootFilesystem"] is True
    assert serving["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert serving["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["automountServiceAccountToken"] is False


def test_everything_the_image_writes_lands_on_the_tmp_volume(objects):
    serving = container(objects)
    volumes = {volume["name"]: volume for volume in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in serving["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    env = {item["name"]: item["value"] for item in serving["env"]}
    for name in ("PROMETHEUS_MULTIPROC_DIR", "LOG_LOCATION", "METRICS_LOCATION"):
        assert env[name].startswith("/tmp/"), name
    start = (ROOT / "serving" / "start.sh").read_text().replace('"$PROMETHEUS_MULTIPROC_DIR"', env["PROMETHEUS_MULTIPROC_DIR"])
    assert re.findall(r"nginx -p (\S+)", start) == ["/tmp/wms-front-door"], "nginx keeps its files under /tmp"
    made = [path for line in re.findall(r"mkdir -p (.+?)(?:$|&&)", start, flags=re.MULTILINE) for path in line.split()]
    assert made and all(path.startswith("/tmp/") for path in made), made


def test_the_token_comes_from_the_secret_by_reference(objects):
    serving = container(objects)
    volumes = {volume["name"]: volume for volume in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    token_file = Path({item["name"]: item["value"] for item in serving["env"]}["WMS_API_KEY_FILE"])
    [mount] = [mount for mount in serving["volumeMounts"] if Path(mount["mountPath"]) == token_file.parent]
    secret = volumes[mount["name"]]["secret"]
    assert mount["readOnly"] is True
    assert secret["secretName"] == TOKEN_SECRET and secret["optional"] is False
    assert secret["items"] == [{"key": "api-token", "path": token_file.name}]
    assert token_file == Path("/var/run/secrets/wms/api-token")
    assert not any(item["kind"] == "Secret" for item in objects), "the chart never carries the token itself"


def test_config_properties_come_from_the_config_map_with_the_image_settings(stage_name, objects):
    serving = container(objects)
    config_map = one(objects, "ConfigMap")
    [mount] = [mount for mount in serving["volumeMounts"] if mount["mountPath"].endswith("config.properties")]
    assert mount == {
        "name": "config",
        "mountPath": "/home/model-server/config.properties",
        "subPath": "config.properties",
        "readOnly": True,
    }
    volumes = {volume["name"]: volume for volume in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    rendered = properties(config_map["data"]["config.properties"])
    image = properties("\n".join(IMAGE_PROPERTIES))
    workers = chart_values(stage_name)["serving"]["workersPerModel"]
    assert rendered == {**image, "default_workers_per_model": str(workers)}
    assert {item["name"]: item["value"] for item in serving["env"]}["WMS_WORKERS_PER_MODEL"] == str(workers)


def test_the_chart_carries_the_image_settings_as_written_from_one_definition():
    assert CHART_PROPERTIES.read_text() == "\n".join(IMAGE_PROPERTIES), (
        "run: .venv/bin/python -c 'from wms.deployment.container_image import write_chart_properties; write_chart_properties()'"
    )


def test_probes_ask_the_front_door_for_ping(objects):
    serving = container(objects)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert serving[probe]["httpGet"] == {"path": "/ping", "port": "http"}, probe
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = deployment["spec"]["template"]
    drain = serving["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["spec"]["terminationGracePeriodSeconds"] > drain
    assert "checksum/config" in pod["metadata"]["annotations"]


def test_cpu_pods_run_on_the_cpu_node_group_with_a_cpu_limit(objects):
    serving = container(objects)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {GPU_NODE_LABEL[0]: "cpu"}
    assert "tolerations" not in pod
    assert "nvidia.com/gpu" not in serving["resources"]["limits"]
    assert serving["resources"]["limits"]["cpu"], "the handler sizes its threads by the CPU limit"


def test_the_gpu_option_asks_for_a_gpu_on_the_tainted_gpu_node_group():
    objects = render_chart(chart_values("prod", **{"gpu.enabled": True}), "model-prod")
    serving = container(objects)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert serving["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {GPU_NODE_LABEL[0]: GPU_NODE_LABEL[1]}
    key, value, effect = GPU_TAINT
    assert pod["tolerations"] == [{"key": key, "operator": "Equal", "value": value, "effect": effect}]


# --- traffic, scaling, monitoring ---------------------------------------------------------------------------------


def test_the_ingress_is_an_https_alb_that_health_checks_ping(stage_name, objects):
    ingress = one(objects, "Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert ingress["spec"]["ingressClassName"] == "alb"
    assert json.loads(annotations["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTPS": 443}]
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/ping"
    assert annotations["alb.ingress.kubernetes.io/scheme"] == {"staging": "internal", "prod": "internet-facing"}[stage_name]
    [rule] = ingress["spec"]["rules"]
    assert [tls["hosts"] for tls in ingress["spec"]["tls"]] == [[rule["host"]]]
    service = one(objects, "Service")
    routes = {path["path"]: path["backend"]["service"] for path in rule["http"]["paths"]}
    assert set(routes) == {"/ping", "/predictions/wms-unet"}
    for backend in routes.values():
        assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert {port["name"]: port["port"] for port in service["spec"]["ports"]}["http"] == 8080


def test_the_service_hpa_pdb_and_policy_select_the_serving_pods(stage_name, objects):
    deployment = one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        one(objects, "Service")["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"],
        one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        one(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector and selector.items() <= pod_labels.items()
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": RELEASE_NAME}
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert hpa["spec"]["minReplicas"] == {"staging": 1, "prod": 2}[stage_name]
    assert one(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_metrics_ports_answer_only_the_monitoring_namespace(objects):
    policy = one(objects, "NetworkPolicy")["spec"]
    open_rule, monitoring_rule = policy["ingress"]
    assert "from" not in open_rule and [port["port"] for port in open_rule["ports"]] == ["http"]
    assert monitoring_rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert [port["port"] for port in monitoring_rule["ports"]] == ["ts-metrics", "handler-metrics"]
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["egress"] == []


def test_the_service_monitor_scrapes_both_metrics_ports(objects):
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    service_ports = {port["name"]: port for port in service["spec"]["ports"]}
    container_ports = {port["name"]: port["containerPort"] for port in container(objects)["ports"]}
    scraped = {endpoint["port"]: endpoint["path"] for endpoint in monitor["spec"]["endpoints"]}
    assert scraped == {"ts-metrics": "/metrics", "handler-metrics": "/metrics"}
    assert {container_ports[service_ports[name]["targetPort"]] for name in scraped} == {8082, 8083}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_the_service_monitor_labels_every_series_with_the_stage_of_its_namespace(stage_name, objects):
    """The operator's relabeling, done here with Prometheus' semantics: an anchored regex and $1 expanded."""
    namespace = STAGES[stage_name].namespace
    for endpoint in one(objects, "ServiceMonitor")["spec"]["endpoints"]:
        [relabel] = [item for item in endpoint["relabelings"] if item["targetLabel"] == "stage"]
        assert relabel["sourceLabels"] == ["__meta_kubernetes_namespace"] and relabel["action"] == "replace"
        match = re.fullmatch(relabel["regex"], namespace)
        assert match and match.expand(relabel["replacement"].replace("$1", r"\1")) == stage_name, endpoint["port"]


def test_the_prometheus_rule_carries_the_rules_file_unchanged():
    objects = render_chart(chart_values(RULES_STAGE), STAGES[RULES_STAGE].namespace)
    rule = one(objects, "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES_FILE.read_text())["groups"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack", "the operator's ruleSelector finds it"


def test_only_one_stage_carries_the_rules_and_its_switch_works():
    for stage_name in STAGES:
        kinds = {item["kind"] for item in render_chart(chart_values(stage_name), STAGES[stage_name].namespace)}
        assert ("PrometheusRule" in kinds) == (stage_name == RULES_STAGE), stage_name
    off = render_chart(chart_values(RULES_STAGE, **{"prometheusRule.enabled": False}), STAGES[RULES_STAGE].namespace)
    assert "PrometheusRule" not in {item["kind"] for item in off}


def test_the_rule_schema_rejects_a_misspelt_rule_field():
    rule = copy.deepcopy(one(render_chart(chart_values(RULES_STAGE), STAGES[RULES_STAGE].namespace), "PrometheusRule"))
    rule["spec"]["groups"][1]["rules"][0]["annotation"] = {"summary": "x"}
    schema = json.loads(CRD_SCHEMAS["monitoring.coreos.com/v1", "PrometheusRule"].read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(rule)


# --- the chart's refusals -----------------------------------------------------------------------------------------


def test_a_missing_digest_fails_the_render_and_says_why():
    message = render_error(chart_values("staging", **{"image.digest": ""}), "model-staging")
    assert "image.digest is missing" in message and "never by a mutable tag" in message


@pytest.mark.parametrize("digest", ["sha256:abc", "sha256:" + "A" * 64, "latest", "md5:" + "0" * 64])
def test_a_malformed_digest_fails_the_render_and_says_why(digest):
    message = render_error(chart_values("staging", **{"image.digest": digest}), "model-staging")
    assert f'image.digest "{digest}" is malformed' in message and "64 lowercase hex digits" in message


def test_a_tag_in_the_repository_fails_the_render():
    message = render_error(chart_values("staging", **{"image.repository": f"{REPOSITORY}:v7"}), "model-staging")
    assert "carries a tag or digest" in message


def test_a_missing_model_version_fails_the_render():
    message = render_error(chart_values("prod", **{"model.version": ""}), "model-prod")
    assert "model.version is missing" in message


def test_one_stage_values_never_render_into_the_other_namespace():
    message = render_error(chart_values("staging"), "model-prod")
    assert "these are the staging values, for namespace model-staging, not model-prod" in message


def test_a_misspelt_value_fails_against_the_values_schema():
    values = chart_values("staging")
    values["autoscaling"]["maxReplica"] = 4
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError, match="maxReplica"):
        chart.render(values, name=RELEASE_NAME, namespace="model-staging")


def test_an_ingress_without_host_or_certificate_fails_the_render():
    message = render_error(chart_values("prod", **{"ingress.host": ""}), "model-prod")
    assert "ingress.host or ingress.certificateArn is required" in message


# --- Dagster's deployment: values for the official chart ------------------------------------------------------------

DAGSTER_VALUES = ROOT / "helm" / "dagster" / "values.yaml"
IMAGE_KEYS = {"repository", "tag", "pullPolicy"}
POD_KEYS = {
    "image", "env", "envConfigMaps", "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity",
    "tolerations", "podSecurityContext", "securityContext", "resources", "readinessProbe", "livenessProbe",
    "startupProbe", "annotations", "schedulerName", "volumeMounts", "volumes",
}  # fmt: skip
CHART_KEYS = {
    "": {
        "global", "serviceAccount", "dagsterWebserver", "dagsterDaemon", "dagster-user-deployments", "runLauncher",
        "postgresql", "generatePostgresqlPasswordSecret", "generateCeleryConfigSecret", "rabbitmq", "redis", "flower",
        "ingress", "telemetry", "imagePullSecrets", "computeLogManager", "scheduler", "pythonLogs", "busybox",
        "migrate", "retention", "concurrency", "additionalInstanceConfig",
    },
    "global": {
        "postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName",
        "dagsterInstanceConfigMap", "postgresqlSecretUsernameKey",
    },
    "serviceAccount": {"create", "name", "annotations"},
    "dagsterWebserver": POD_KEYS | {
        "replicaCount", "nameOverride", "pathPrefix", "service", "workspace", "enableReadOnly", "dbStatementTimeout",
        "dbPoolRecycle", "logLevel",
    },
    "dagsterWebserver.service": {"type", "port", "annotations"},
    "dagsterDaemon": POD_KEYS | {"enabled", "runCoordinator", "heartbeatTolerance", "runMonitoring", "runRetries",
                                 "sensors", "schedules"},
    "dagsterDaemon.runCoordinator": {"enabled", "type", "config"},
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator": {
        "maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueUseThreads", "dequeueNumWorkers",
    },
    "dagster-user-deployments": {"enabled", "enableSubchart", "imagePullSecrets", "deployments"},
    "runLauncher": {"type", "config"},
    "runLauncher.config.k8sRunLauncher": {
        "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile", "envConfigMaps",
        "envSecrets", "envVars", "volumeMounts", "volumes", "labels", "failPodOnRunFailure", "resources",
        "schedulerName", "securityContext", "runK8sConfig",
    },
    "runLauncher.config.k8sRunLauncher.runK8sConfig": {
        "containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata",
    },
    "postgresql": {
        "postgresqlScheme", "image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
        "postgresqlDatabase", "postgresqlParams", "service",
    },
}  # fmt: skip
"""The keys the dagster chart accepts in the sections we set, transcribed from its schema models
(helm/dagster/schema/schema/charts in dagster-io/dagster, 1.13.x; several sections forbid unknown keys)."""
USER_DEPLOYMENT_KEYS = POD_KEYS - {"deploymentLabels"} | {
    "name", "port", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns", "deploymentNamespace",
    "replicaCount", "initContainers", "sidecarContainers", "deploymentStrategy",
}  # fmt: skip


def dagster_values() -> dict:
    values = helm.values_from_yaml(DAGSTER_VALUES.read_text())  # Helm's own YAML reading, as `helm -f` reads it
    assert values == yaml.safe_load(DAGSTER_VALUES.read_text())
    return values


def section(values: dict, dotted: str) -> dict:
    for key in filter(None, dotted.split(".")):
        values = values[key]
    return values


def test_dagster_values_use_only_keys_the_chart_knows():
    values = dagster_values()
    for dotted, known in CHART_KEYS.items():
        assert set(section(values, dotted)) <= known, dotted
    for deployment in values["dagster-user-deployments"]["deployments"]:
        assert set(deployment) <= USER_DEPLOYMENT_KEYS
    for dotted in ("dagsterWebserver", "dagsterDaemon"):
        assert set(section(values, dotted)["image"]) == IMAGE_KEYS


def test_dagster_runs_on_its_own_images_at_the_installed_version():
    values = dagster_values()
    version = importlib.metadata.version("dagster")
    for dotted in ("dagsterWebserver", "dagsterDaemon"):
        assert section(values, dotted)["image"]["tag"] == version, dotted
    assert version in DAGSTER_VALUES.read_text().splitlines()[0], "the header names the chart version"


def test_dagster_launches_runs_as_kubernetes_jobs_in_its_namespace():
    from wms_assets.kubernetes import DAGSTER_NAMESPACE, DAGSTER_SERVICE_ACCOUNT, SETTINGS_CONFIG_MAP

    values = dagster_values()
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    config = launcher["config"]["k8sRunLauncher"]
    assert config["jobNamespace"] == DAGSTER_NAMESPACE and config["loadInclusterConfig"] is True
    assert {"name": SETTINGS_CONFIG_MAP} in config["envConfigMaps"]
    assert values["dagsterDaemon"]["enabled"] is True
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert values["global"]["serviceAccountName"] == values["serviceAccount"]["name"] == DAGSTER_SERVICE_ACCOUNT
    assert values["serviceAccount"]["create"] is True
    role = values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@-]+", role)


def test_dagster_storage_is_the_rds_postgresql_through_an_existing_secret():
    values = dagster_values()
    postgresql = values["postgresql"]
    assert postgresql["enabled"] is False
    assert postgresql["postgresqlHost"].endswith(".rds.amazonaws.com")
    assert "postgresqlPassword" not in postgresql, "the password lives in the Secret only"
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert postgresql["postgresqlScheme"] == "postgresql+psycopg2"


def test_the_user_code_deployment_is_the_wms_training_image_by_digest():
    from wms_assets.kubernetes import SETTINGS_CONFIG_MAP, TRAINING_IMAGE_VARIABLE

    values = dagster_values()
    assert values["dagster-user-deployments"]["enabled"] is True
    [deployment] = values["dagster-user-deployments"]["deployments"]
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"  # how the chart writes it
    assert re.fullmatch(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/wms-training@sha256:[0-9a-f]{64}", image)
    env = {item["name"]: item["value"] for item in deployment["env"]}
    assert env["WMS_PROFILE"] == "aws"
    assert env[TRAINING_IMAGE_VARIABLE] == image
    assert {"name": SETTINGS_CONFIG_MAP} in deployment["envConfigMaps"]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]["module_name"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", module]


@pytest.mark.parametrize("stage_name", list(STAGES))
def test_the_release_provisions_its_stages_grafana_dashboard(stage_name):
    from wms.monitoring.dashboards import serving_dashboard

    objects = render_chart(chart_values(stage_name), STAGES[stage_name].namespace)
    (dashboards,) = [item for item in objects if is_dashboard(item)]

    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboards["data"][f"wms-serving-{stage_name}.json"]) == serving_dashboard(stage_name)
    off = render_chart(chart_values(stage_name, grafanaDashboard={"enabled": False}), STAGES[stage_name].namespace)
    assert not [item for item in off if is_dashboard(item)]
