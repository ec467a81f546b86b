"""The release stages on EKS and the names the Helm chart, Terraform, the workflows and the assets share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    namespace: str
    values_file: str


STAGES: dict[str, Stage] = {
    "staging": Stage("staging", "model-staging", "values-staging.yaml"),
    "prod": Stage("prod", "model-prod", "values-prod.yaml"),
}
"""Staging gets each model that passed the gates; prod gets it after staging's checks."""

RELEASE_NAME = "wms-serving"
CANARY_RELEASE = f"{RELEASE_NAME}-canary"
"""A canary's candidate: a second release of the chart beside the one in service, in the same namespace (an Ingress
can only forward to Services of its own namespace)."""
CHART_DIR = "helm/wms-serving"
TOKEN_SECRET = "wms-api-token"
"""The Secret (key `api-token`) the serving pods mount at /var/run/secrets/wms/api-token; made outside the chart."""

GPU_NODE_LABEL = ("wms.io/node-pool", "gpu")
GPU_TAINT = ("nvidia.com/gpu", "true", "NoSchedule")
"""The GPU node group's label and taint (terraform/eks.tf); GPU pods select the label and tolerate the taint."""


def stage(name: str) -> Stage:
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}: choose one of {', '.join(STAGES)}")
    return STAGES[name]
