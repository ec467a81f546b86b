"""The Kubernetes Job that dagster-k8s submits for the training step on the aws profile, validated offline."""

from types import SimpleNamespace

import kubernetes
import pytest
import yaml
from dagster import DagsterInstance
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.executor.init import InitExecutorContext
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import construct_dagster_k8s_job, get_user_defined_k8s_config

from tests.cloud import kubernetes_validate
from wms.deployment.stages import GPU_NODE_LABEL, GPU_TAINT
from wms_assets.definitions import build_definitions
from wms_assets.kubernetes import DAGSTER_NAMESPACE, TRAINING_IMAGE_VARIABLE
from wms_assets.profiles import resources_for

IMAGE = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/wms-training@sha256:" + "a" * 64
RUN_LAUNCHER = SimpleNamespace(
    dagster_home="/opt/dagster/dagster_home",
    instance_config_map="dagster-instance",
    postgres_password_secret="dagster-postgresql-secret",
)
"""What the K8sRunLauncher of helm/dagster/values.yaml hands to step jobs (the Dagster chart's names)."""


def step_job(step: str, monkeypatch) -> dict:
    """The Job for one step of the aws training job, built as K8sStepHandler.launch_step builds it (dagster-k8s 0.29)."""
    monkeypatch.setenv(TRAINING_IMAGE_VARIABLE, IMAGE)
    monkeypatch.setattr(kubernetes.config, "load_incluster_config", lambda: None)  # no cluster here; nothing is sent
    job = build_definitions(resources_for("aws"), "aws").resolve_job_def("wms_training")
    executor_def = job.executor_def
    config = executor_def.apply_config_mapping({"config": {}}).value["config"]  # as a run resolves it, defaults in
    instance = DagsterInstance.ephemeral()
    init = InitExecutorContext(job=InMemoryJob(job), executor_def=executor_def, executor_config=config, instance=instance)
    handler = executor_def.executor_creation_fn(init)._step_handler
    tags = job.graph.node_named(step).definition.tags
    context = handler._executor_container_context.merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(tags)))
    spec = construct_dagster_k8s_job(
        job_config=context.get_k8s_job_config(handler._executor_image, RUN_LAUNCHER),
        args=["dagster", "api", "execute_step"],
        job_name=f"dagster-step-{step.replace('_', '-')}",
        component="step_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/job": job.name, "dagster/op": step},
        env_vars=[{"name": "DAGSTER_RUN_STEP_KEY", "value": step}],
    )
    manifest = kubernetes.client.ApiClient().sanitize_for_serialization(spec)
    manifest["metadata"]["namespace"] = context.namespace  # the executor passes it to the API call, not the body
    return manifest


def test_the_training_step_runs_on_a_gpu_node_from_the_ecr_image(monkeypatch):
    job = step_job("trained_model", monkeypatch)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]

    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert pod["nodeSelector"] == {GPU_NODE_LABEL[0]: GPU_NODE_LABEL[1]}
    assert {"key": GPU_TAINT[0], "operator": "Equal", "value": GPU_TAINT[1], "effect": GPU_TAINT[2]} in pod["tolerations"]
    assert container["image"] == IMAGE
    assert job["spec"]["ttlSecondsAfterFinished"] > 0 and job["spec"]["backoffLimit"] >= 0
    assert job["metadata"]["namespace"] == DAGSTER_NAMESPACE
    assert pod["serviceAccountName"] == "dagster"


def test_other_steps_stay_on_cpu_nodes_without_a_gpu(monkeypatch):
    pod = step_job("registered_model", monkeypatch)["spec"]["template"]["spec"]

    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"].get("limits", {})
    assert pod["nodeSelector"] == {"wms.io/node-pool": "cpu"}
    assert not pod.get("tolerations")


@pytest.mark.parametrize("step", ["trained_model", "registered_model"])
def test_the_step_jobs_are_valid_kubernetes_at_the_eks_version(step, monkeypatch, tmp_path):
    manifest = tmp_path / f"{step}.yaml"
    manifest.write_text(yaml.safe_dump(step_job(step, monkeypatch)))

    kubernetes_validate([manifest])


def test_the_training_job_retries_the_training_step_and_only_on_aws():
    aws = build_definitions(resources_for("aws"), "aws").resolve_job_def("wms_training")
    local = build_definitions(resources_for("local"), "local").resolve_job_def("wms_training")

    assert aws.executor_def.name == "wms_k8s_executor" and aws.op_retry_policy.max_retries == 2
    assert local.executor_def.name != "wms_k8s_executor" and local.op_retry_policy is None
