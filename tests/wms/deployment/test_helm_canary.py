"""A canary on EKS through Helm (wms.deployment.helm_release): the candidate's release beside the one in service, the weight set
on the release in service's Ingress, promotion and retirement, each as the sequence of Helm calls it makes.

No cluster can run here: the calls go to the double of helm_python.Config that test_helm_release.py uses (each call
bound to the real method's signature), holding the two releases' values as Helm would store them.
"""

from __future__ import annotations

import helm_python as helm
import pytest

from tests.wms.deployment.test_helm_release import IMAGE, RecordingCluster
from wms.deployment import helm_release
from wms.deployment.helm_release import HelmReleaseError, Released
from wms.deployment.stages import CANARY_RELEASE, RELEASE_NAME

CANDIDATE_IMAGE = IMAGE.replace("0123456789abcdef", "fedcba9876543210")


class TwoReleases(RecordingCluster):
    """Helm's release records of one namespace: the values of each release installed, upgraded or uninstalled."""

    def __init__(self, **values_by_release: dict) -> None:
        super().__init__(history=None)
        self.stored = dict(values_by_release)

    def history(self, name, **options):
        self._bind("history", name, **options)
        if name not in self.stored:
            raise helm.HelmNotFoundError("release: not found", code=helm.ErrorCode.NOT_FOUND)
        return [{"revision": 1, "status": "deployed"}]

    def get_values(self, name, **options):
        self._bind("get_values", name, **options)
        return self.stored[name]

    def uninstall(self, name, **options):
        self._bind("uninstall", name, **options)
        self.calls.append(("uninstall", {"name": name, **options}))
        self.stored.pop(name, None)
        return {"info": "uninstalled"}

    def _act(self, action, chart, name, values, **options):
        answer = super()._act(action, chart, name, values, **options)
        self.stored[name] = values
        return answer


def values(version: str, image: str, **extra) -> dict:
    return helm_release.release_values("prod", version, image, overrides=extra or None)


@pytest.fixture
def in_service_7() -> TwoReleases:
    return TwoReleases(**{RELEASE_NAME: values("7", IMAGE)})


@pytest.fixture
def canary_of_8(in_service_7) -> TwoReleases:
    helm_release.start_canary("prod", "8", CANDIDATE_IMAGE, config=in_service_7)
    in_service_7.calls.clear()
    return in_service_7


def test_the_candidate_is_installed_as_its_own_release_without_ingress_rules_or_service_account(in_service_7):
    helm_release.start_canary("prod", "8", CANDIDATE_IMAGE, config=in_service_7)
    [(action, options)] = in_service_7.calls
    assert (action, options["name"], options["namespace"]) == ("install", CANARY_RELEASE, "model-prod")
    installed = options["values"]
    assert installed["model"]["version"] == "8" and installed["ingress"]["enabled"] is False
    assert installed["prometheusRule"]["enabled"] is False and installed["serviceAccount"]["create"] is False
    assert helm_release.released("prod", config=in_service_7) == Released("7", IMAGE), "the release in service is untouched"


def test_a_weight_goes_onto_the_release_in_service_at_its_own_version_and_image(canary_of_8):
    helm_release.set_canary_weight("prod", 50, config=canary_of_8)
    [(action, options)] = canary_of_8.calls
    assert (action, options["name"]) == ("upgrade", RELEASE_NAME)
    assert options["values"]["canary"] == {"release": CANARY_RELEASE, "weight": 50}
    assert helm_release.released("prod", config=canary_of_8) == Released("7", IMAGE, canary_weight=50)


@pytest.mark.parametrize("weight", [-1, 101, 2.5])
def test_a_weight_outside_0_to_100_changes_nothing(canary_of_8, weight):
    with pytest.raises(HelmReleaseError, match="whole percent from 0 to 100"):
        helm_release.set_canary_weight("prod", weight, config=canary_of_8)
    assert canary_of_8.calls == []


def test_a_weight_without_a_candidate_release_changes_nothing(in_service_7):
    with pytest.raises(HelmReleaseError, match=f"no canary release {CANARY_RELEASE} runs in model-prod: start one first"):
        helm_release.set_canary_weight("prod", 10, config=in_service_7)
    assert in_service_7.calls == []


def test_promotion_moves_the_release_in_service_to_the_candidate_while_the_candidate_answers_all(canary_of_8):
    assert helm_release.promote_canary("prod", config=canary_of_8) == "7"
    steps = [(action, options["name"], options.get("values", {}).get("canary")) for action, options in canary_of_8.calls]
    assert steps == [
        ("upgrade", RELEASE_NAME, {"release": CANARY_RELEASE, "weight": 100}),
        ("upgrade", RELEASE_NAME, {"release": "", "weight": 0}),
        ("uninstall", CANARY_RELEASE, None),
    ]
    assert helm_release.released("prod", config=canary_of_8) == Released("8", CANDIDATE_IMAGE)
    assert helm_release.released("prod", CANARY_RELEASE, config=canary_of_8) is None


def test_retirement_sends_everything_back_then_removes_the_candidate(canary_of_8):
    helm_release.set_canary_weight("prod", 10, config=canary_of_8)
    assert helm_release.retire_canary("prod", config=canary_of_8) == "8"
    assert [(action, options["name"]) for action, options in canary_of_8.calls[1:]] == [
        ("upgrade", RELEASE_NAME),
        ("uninstall", CANARY_RELEASE),
    ]
    assert helm_release.released("prod", config=canary_of_8) == Released("7", IMAGE)


def test_a_canary_without_a_release_in_service_is_refused():
    with pytest.raises(HelmReleaseError, match="no release wms-serving runs in model-prod: a canary needs a version in service"):
        helm_release.set_canary_weight("prod", 10, config=TwoReleases())


def test_an_unreachable_cluster_changes_nothing_and_says_what_to_do(kubeconfig_of_an_absent_cluster):
    with pytest.raises(HelmReleaseError, match=r"cannot reach the Kubernetes cluster (.|\n)* `aws eks update-kubeconfig"):
        helm_release.set_canary_weight("prod", 10, kubeconfig=kubeconfig_of_an_absent_cluster)
