"""The aws profile's release target: a Helm release that needs a pinned image and a reachable cluster."""

from pathlib import Path

import pytest

from tests.wms.deployment.test_helm_release import IMAGE
from wms.deployment.helm_release import HelmReleaseError
from wms_assets.resources import HelmRelease


def test_a_release_without_a_pushed_image_is_refused_with_what_to_configure(tmp_path):
    with pytest.raises(ValueError, match="WMS_ECR_REPOSITORY"):
        HelmRelease().deploy("staging", "wms-unet", "3", tmp_path / "wms-unet-v3.mar", image_reference=None)


def test_an_unreachable_cluster_fails_the_release_with_the_stage_and_what_to_do(kubeconfig_of_an_absent_cluster):
    target = HelmRelease(kubeconfig=str(kubeconfig_of_an_absent_cluster), timeout_seconds=30)

    with pytest.raises(HelmReleaseError, match="update-kubeconfig") as failure:
        target.deploy("staging", "wms-unet", "3", Path("unused.mar"), image_reference=str(IMAGE))

    assert "model-staging" in str(failure.value)
