"""A canary on EKS, rendered offline: the release in service and the candidate's release side by side in model-prod,
one ALB Ingress splitting between their Services by weight (the AWS Load Balancer Controller's forward action).

Checked as the chart is: kubernetes-validate --strict, checkov, the values schema; and the annotation's JSON parsed,
its services and ports matched against the Services the two releases render."""

from __future__ import annotations

import json

import pytest

from tests.cloud import checkov, eks_version
from tests.helm.test_chart import IMAGE, VERSION, chart_values, one, parse, render_error
from wms.deployment import helm_release
from wms.deployment.helm_release import CANDIDATE_VALUES, HelmReleaseError, split_values
from wms.deployment.stages import CANARY_RELEASE, RELEASE_NAME, STAGES

NAMESPACE = STAGES["prod"].namespace
CANDIDATE = "8"
SPLIT_ACTION = "alb.ingress.kubernetes.io/actions.canary-split"


def releases(weight: int) -> tuple[list[dict], list[dict]]:
    """The objects of the release in service (sending `weight` % to the candidate) and of the candidate's release."""
    in_service = helm_release.render("prod", VERSION, IMAGE, overrides=split_values(weight))
    candidate = helm_release.render("prod", CANDIDATE, IMAGE, release_name=CANARY_RELEASE, overrides=CANDIDATE_VALUES)
    return parse(in_service), parse(candidate)


@pytest.fixture(scope="module")
def pair() -> tuple[list[dict], list[dict]]:
    return releases(10)


def target_groups(ingress: dict) -> list[dict]:
    action = json.loads(ingress["metadata"]["annotations"][SPLIT_ACTION])
    assert action["type"] == "forward" and action["forwardConfig"]["targetGroupStickinessConfig"] == {"enabled": False}
    return action["forwardConfig"]["targetGroups"]


def test_the_ingress_forwards_by_weight_to_the_services_of_both_releases(pair):
    in_service, candidate = pair
    ingress = one(in_service, "Ingress")
    services = {service["metadata"]["name"]: service for service in [one(in_service, "Service"), one(candidate, "Service")]}
    groups = target_groups(ingress)
    assert {group["serviceName"]: group["weight"] for group in groups} == {RELEASE_NAME: 90, CANARY_RELEASE: 10}
    for group in groups:
        service = services[group["serviceName"]]
        assert service["metadata"]["namespace"] == ingress["metadata"]["namespace"] == NAMESPACE
        assert {str(port["port"]) for port in service["spec"]["ports"] if port["name"] == "http"} == {group["servicePort"]}


def test_every_route_goes_to_the_split_action(pair):
    ingress = one(pair[0], "Ingress")
    [rule] = ingress["spec"]["rules"]
    action = SPLIT_ACTION.removeprefix("alb.ingress.kubernetes.io/actions.")
    for path in rule["http"]["paths"]:
        assert path["backend"]["service"] == {"name": action, "port": {"name": "use-annotation"}}


def test_each_service_selects_only_its_own_release_s_pods(pair):
    in_service, candidate = pair
    for own, other in ((in_service, candidate), (candidate, in_service)):
        selector = one(own, "Service")["spec"]["selector"]
        assert selector.items() <= one(own, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
        assert not selector.items() <= one(other, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    assert one(candidate, "Deployment")["metadata"]["labels"]["wms.io/model-version"] == CANDIDATE


def test_the_candidate_leaves_the_ingress_rules_and_dashboard_to_the_release_in_service(pair):
    in_service, candidate = pair
    kinds = {item["kind"] for item in candidate}
    assert not kinds & {"Ingress", "PrometheusRule", "ServiceAccount"}
    assert [item["metadata"]["name"] for item in candidate if item["kind"] == "ConfigMap"] == [f"{CANARY_RELEASE}-config"]
    assert {"ServiceMonitor", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} <= kinds, "run like prod"
    assert not names(in_service) & names(candidate), "no object of one release is the other's (Helm would refuse it)"
    account = one(in_service, "ServiceAccount")["metadata"]["name"]
    assert one(candidate, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == account


def names(objects: list[dict]) -> set[tuple[str, str]]:
    return {(item["kind"], item["metadata"]["name"]) for item in objects}


@pytest.mark.parametrize("weight", [0, 100])
def test_the_ends_of_the_range_render_and_sum_to_100(weight):
    groups = target_groups(one(releases(weight)[0], "Ingress"))
    assert sorted(group["weight"] for group in groups) == sorted([weight, 100 - weight])


def test_both_releases_pass_kubernetes_validate_strict(pair, tmp_path):
    from kubernetes_validate import utils as kubernetes_schemas

    from tests.helm.test_chart import CRD_SCHEMAS

    for item in [*pair[0], *pair[1]]:
        if (item["apiVersion"], item["kind"]) not in CRD_SCHEMAS:
            kubernetes_schemas.validate(item, f"{eks_version()}.0", strict=True)


def test_checkov_finds_no_failed_check_in_either_release(tmp_path):
    helm_release.write_manifests(helm_release.render("prod", VERSION, IMAGE, overrides=split_values(10)), tmp_path / "in-service")
    candidate = helm_release.render("prod", CANDIDATE, IMAGE, release_name=CANARY_RELEASE, overrides=CANDIDATE_VALUES)
    helm_release.write_manifests(candidate, tmp_path / "candidate")
    for folder in ("in-service", "candidate"):
        report = checkov(tmp_path / folder, "kubernetes")
        assert report["results"]["failed_checks"] == [] and report["summary"]["parsing_errors"] == 0, folder


@pytest.mark.parametrize("weight", [-1, 101, 12.5, "10", True])
def test_a_weight_outside_0_to_100_is_refused_before_any_render(weight):
    with pytest.raises(HelmReleaseError, match="whole percent from 0 to 100"):
        split_values(weight)


@pytest.mark.parametrize("weight", [-1, 101])
def test_the_values_schema_refuses_a_weight_outside_0_to_100_too(weight):
    error = render_error(chart_values("prod", **{"canary.release": CANARY_RELEASE, "canary.weight": weight}), NAMESPACE)
    assert "canary.weight" in error or "weight" in error


def test_a_canary_that_names_the_release_itself_is_refused():
    error = render_error(chart_values("prod", **{"canary.release": RELEASE_NAME, "canary.weight": 10}), NAMESPACE)
    assert "another release of the chart" in error
