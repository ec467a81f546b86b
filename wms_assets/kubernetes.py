"""Training on EKS through dagster-k8s: the training step's pod and the executor of the training job (aws profile).

Why the k8s_job_executor and not the run launcher alone: the K8sRunLauncher of Dagster's Helm chart
(helm/dagster/values.yaml) starts each run as a pod on the CPU nodes; within the training job the k8s_job_executor
gives every step a Kubernetes Job of its own, so only `trained_model` holds a GPU node, for as long as it trains,
while reading the data, registering, gating and exporting run on CPU nodes.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_k8s import k8s_job_executor

from wms.deployment.stages import GPU_NODE_LABEL, GPU_TAINT

CPU_NODE_LABEL = ("wms.io/node-pool", "cpu")
DAGSTER_NAMESPACE = "dagster"
DAGSTER_SERVICE_ACCOUNT = "dagster"
SETTINGS_CONFIG_MAP = "wms-settings"
"""ConfigMap in the dagster namespace with the aws profile's settings (WMS_PROFILE, MLFLOW_TRACKING_URI, ...)."""
TRAINING_IMAGE_VARIABLE = "WMS_TRAINING_IMAGE"
"""The training image's pinned reference in ECR (repository@sha256:...), set on the Dagster deployment."""
FINISHED_JOB_TTL_SECONDS = 24 * 3600
TRAINING_DEADLINE_SECONDS = 8 * 3600

TRAINING_POD: dict[str, Any] = {
    "container_config": {
        "resources": {"requests": {"cpu": "3", "memory": "12Gi"}, "limits": {"memory": "24Gi", "nvidia.com/gpu": "1"}},
        "volume_mounts": [{"name": "shm", "mount_path": "/dev/shm"}],
    },
    "pod_spec_config": {
        "node_selector": {GPU_NODE_LABEL[0]: GPU_NODE_LABEL[1]},
        "tolerations": [{"key": GPU_TAINT[0], "operator": "Equal", "value": GPU_TAINT[1], "effect": GPU_TAINT[2]}],
        # DataLoader workers pass batches through /dev/shm, which a container gets at 64 MiB unless it is mounted.
        "volumes": [{"name": "shm", "empty_dir": {"medium": "Memory", "size_limit": "4Gi"}}],
    },
    "job_spec_config": {
        "ttl_seconds_after_finished": FINISHED_JOB_TTL_SECONDS,
        "backoff_limit": 1,
        "active_deadline_seconds": TRAINING_DEADLINE_SECONDS,
    },
}
"""The `dagster-k8s/config` of the training asset: one GPU (limit; the request follows) on the tainted GPU node group,
a finished Job kept a day, one pod-level retry (an evicted pod) under Dagster's step retries."""

CPU_STEP_POD: dict[str, Any] = {
    "container_config": {"resources": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}},
    "pod_spec_config": {"node_selector": {CPU_NODE_LABEL[0]: CPU_NODE_LABEL[1]}},
    "job_spec_config": {"ttl_seconds_after_finished": FINISHED_JOB_TTL_SECONDS, "backoff_limit": 0},
}
"""Every other step of the training job: the CPU node group."""

TRAINING_RETRY = dg.RetryPolicy(max_retries=2, delay=120, backoff=dg.Backoff.EXPONENTIAL)
"""A failed training step is retried twice, 2 then 4 minutes later (a lost spot node, a GPU that fell off the bus);
it resumes from its last checkpoint."""

training_pod_tags = {"dagster-k8s/config": TRAINING_POD}


def training_executor() -> dg.ExecutorDefinition:
    """The k8s_job_executor that runs each step of the training job as a Job in the dagster namespace."""
    return k8s_job_executor.configured(
        {
            "job_namespace": DAGSTER_NAMESPACE,
            "service_account_name": DAGSTER_SERVICE_ACCOUNT,
            "job_image": {"env": TRAINING_IMAGE_VARIABLE},
            "image_pull_policy": "IfNotPresent",
            "env_config_maps": [SETTINGS_CONFIG_MAP],
            "max_concurrent": 2,
            "step_k8s_config": CPU_STEP_POD,
            "security_context": {"run_as_non_root": True, "run_as_user": 1000, "allow_privilege_escalation": False},
        },
        name="wms_k8s_executor",
    )
