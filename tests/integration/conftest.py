"""One lineage stage for the modules that run the whole asset graph on synthetic photos: a real DVC, MLflow store and
TorchServe, and a first champion that learned the photos (its run is `first_run`). Setting it up once saves the
suite a second data set, training and release."""

import dagster as dg
import pytest

from tests.conftest import free_port
from tests.models import LEARNED_FLOOR, LEARNING_SCHEDULE, SYNTHETIC_PHOTOS
from wms.core.local_state import StateLayout
from wms_assets.definitions import build_definitions
from wms_assets.profiles import local_resources
from wms_assets.resources import LocalModelServer, PromotionPolicy, RawImageSource
from wms_assets.run import materialize_job

TINY_TRAINING = {**LEARNING_SCHEDULE, "fine_tune": "1:0.001:96"}
"""Two short cycles that learn the synthetic windows, like the `cpu` preset's: the whole path from training to serving
goes through them; new photos fine-tune the champion for one epoch."""


def free_server_ports() -> dict[str, int]:
    """A free port for each of LocalModelServer's ports, the workers' socket suffix included: servers of the session
    run side by side, and TorchServe's worker sockets would collide on the default."""
    return {name: free_port() for name in LocalModelServer.model_fields if name.endswith("_port")}


def definitions(layout: StateLayout, server: LocalModelServer, **policy) -> dg.Definitions:
    """The local profile's resources on the stage's state, with the promotion policy's defaults changed by `policy`."""
    resources = local_resources(layout)
    resources["raw_source"] = RawImageSource(
        synthetic_dir=str(layout.synthetic_data), synthetic_count=SYNTHETIC_PHOTOS, synthetic_seed=1
    )
    resources["promotion_policy"] = PromotionPolicy(**policy)
    resources["model_server"] = server
    return build_definitions(resources)


@pytest.fixture(scope="session")
def stage(tmp_path_factory):
    layout = StateLayout(tmp_path_factory.mktemp("state"))
    server = LocalModelServer(home=str(layout.torchserve_home), **free_server_ports())
    instance = dg.DagsterInstance.ephemeral()
    yield layout, server, instance
    server.server().stop()


@pytest.fixture(scope="session")
def first_run(stage):
    """The whole lineage once, every gate at its default but the IoU minimum raised to what only learning reaches."""
    layout, server, instance = stage
    outcome = materialize_job(TINY_TRAINING, instance, definitions(layout, server, min_test_iou=LEARNED_FLOOR))
    assert outcome.success, outcome.summary()
    return outcome
