import pytest
import torch

from wms.model import build_unet
from wms.tracking import CHALLENGER, CHAMPION, ModelRegistry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    home = tmp_path_factory.mktemp("mlflow")
    return ModelRegistry(f"sqlite:///{home / 'mlflow.db'}", "test-unet", artifact_location=(home / "artifacts").as_uri())


@pytest.fixture(scope="module")
def logged(registry):
    with registry.training_run({"image_size": 64}, {"data_version": "abc"}) as run:
        run.log_epoch(1, {"val_iou": 0.5})
        uri = run.log_model(build_unet("mobilenet_v2"), 64)
    return run.run_id, uri


def test_register_sets_challenger_and_tags(registry, logged):
    run_id, uri = logged
    version = registry.register(uri, run_id, {"test_mean_iou": "0.9"})
    assert str(registry.version_by_alias(CHALLENGER).version) == version
    assert registry.client.get_model_version("test-unet", version).tags["test_mean_iou"] == "0.9"
    assert str(registry.version_of_run(run_id).version) == version


def test_promote_moves_champion_and_returns_the_previous(registry, logged):
    run_id, uri = logged
    first = registry.register(uri, run_id, {})
    second = registry.register(uri, run_id, {})
    registry.promote(first)
    assert registry.promote(second) == first
    assert str(registry.version_by_alias(CHAMPION).version) == second


def test_a_registered_model_loads_with_its_input_size(registry, logged):
    run_id, uri = logged
    version = registry.register(uri, run_id, {})
    model = registry.load_pytorch(f"models:/test-unet/{version}")
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    assert registry.image_size_of(f"models:/test-unet/{version}") == 64


def test_unknown_aliases_and_uris_fail_clearly(registry):
    assert registry.version_by_alias("nobody") is None
    with pytest.raises(LookupError, match="no registered model version"):
        registry.image_size_of("models:/test-unet@nobody")
