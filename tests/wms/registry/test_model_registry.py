import json
from importlib import metadata
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import mlflow
import pytest
import torch

from wms.registry.model_registry import (
    ARCHIVED_TAG,
    CHALLENGER,
    CHAMPION,
    ChampionEvent,
    ModelRegistry,
    champion_stack,
    gates_table,
)
from wms.training.model import build_unet

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


def test_the_last_gated_version_is_the_newest_older_one_with_gate_results(registry, logged):
    run_id, uri = logged
    gated = registry.register(uri, run_id, {"gate.test_scores": "passed: IoU 0.9"})
    ungated = registry.register(uri, run_id, {})
    newest = registry.register(uri, run_id, {})
    registry.promote(gated)
    last = registry.last_gated_version(before=newest)
    assert last.version == int(gated) and last.aliases == [CHAMPION]
    assert registry.last_gated_version(before=ungated).version == int(gated)


def test_gates_read_as_a_short_table():
    table = gates_table({"test_scores": "passed: IoU 0.9 | Dice 0.95", "latency": "failed: " + "slow " * 100})
    assert table.splitlines()[:3] == ["| gate | outcome |", "|---|---|", f"| latency | {('failed: ' + 'slow ' * 100)[:100]} |"]
    assert table.splitlines()[3] == "| test_scores | passed: IoU 0.9 / Dice 0.95 |"


def test_an_artifact_is_addressed_through_the_ui_s_file_route():
    url = ModelRegistry.artifact_url("http://127.0.0.1:5000/", "abc123", "worst test.png")
    assert url == "http://127.0.0.1:5000/get-artifact?path=worst+test.png&run_uuid=abc123"


def test_a_registered_model_loads_with_its_input_size(registry, logged):
    run_id, uri = logged
    version = registry.register(uri, run_id, {})
    model = registry.load_pytorch(f"models:/test-unet/{version}")
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    assert registry.image_size_of(f"models:/test-unet/{version}") == 64


def test_a_logged_model_pins_the_packages_that_load_it(registry, logged):
    """The requirements are given, not inferred: they must still name torch, cloudpickle and the U-Net's library at
    the versions installed here, so that `mlflow models serve` or a pod rebuilds an environment that unpickles it."""
    _, uri = logged
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=registry.tracking_uri))
    pinned = dict(line.split("==") for line in (folder / "requirements.txt").read_text().split() if "==" in line)
    installed = {package: metadata.version(package) for package in ("segmentation-models-pytorch", "cloudpickle", "numpy")}
    assert pinned.items() >= installed.items()
    assert pinned["torch"] == metadata.version("torch").split("+")[0]


def test_unknown_aliases_and_uris_fail_clearly(registry):
    assert registry.version_by_alias("nobody") is None
    with pytest.raises(LookupError, match="no registered model version"):
        registry.image_size_of("models:/test-unet@nobody")


def test_champion_moves_are_recorded_and_the_replaced_version_archived(registry, logged):
    run_id, uri = logged
    first, second = registry.register(uri, run_id, {}), registry.register(uri, run_id, {})
    start = len(registry.champion_history())
    registry.promote(first, reason="first gate pass")
    registry.promote(second, reason="better IoU")
    history = registry.champion_history()[start:]
    assert [(event.action, event.version, event.previous) for event in history][-1] == ("promote", second, first)
    assert history[-1].reason == "better IoU"
    assert "replaced by version" in registry.client.get_model_version("test-unet", first).tags[ARCHIVED_TAG]


def test_the_history_reads_as_a_table_in_the_model_s_description(registry, logged):
    run_id, uri = logged
    first, second = registry.register(uri, run_id, {}), registry.register(uri, run_id, {})
    registry.promote(first, reason="first | pass")
    registry.promote(second, reason="better IoU")
    description = registry.client.get_registered_model("test-unet").description
    newest, older = description.index(f"| promote | {second} | {first} | better IoU |"), description.index("first / pass")
    assert description.startswith("U-Net that finds") and "## Champion history" in description and newest < older


def test_the_experiment_is_a_classic_ml_one_and_runs_carry_their_names(registry, logged):
    experiment = registry.client.get_experiment_by_name(registry.experiment_name)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    with registry.training_run({"image_size": 64}, {}, name="demo, from scratch, data abc, 2026-12-04 17:06") as run:
        pass
    assert registry.client.get_run(run.run_id).info.run_name == "demo, from scratch, data abc, 2026-12-04 17:06"


def test_the_runs_list_link_opens_a_shared_view_with_the_test_scores_as_columns(registry, logged):
    url = registry.runs_by_score_url("http://127.0.0.1:5000")
    experiment = registry.client.get_experiment_by_name(registry.experiment_name)
    assert url.startswith(f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs?")
    key = parse_qs(urlsplit(url.split("#", 1)[1]).query)["viewStateShareKey"][0]
    view = json.loads(experiment.tags[f"mlflow.sharedViewState.{key}"])
    assert view["orderByKey"] == "metrics.`test_mean_iou`" and view["orderByAsc"] is False
    assert {"metrics.`test_mean_iou`", "metrics.`test_mean_dice`", "tags.`trained_on`"} <= set(view["selectedColumns"])


def test_rollback_returns_to_the_previous_champion_and_archives_the_current(registry, logged):
    run_id, uri = logged
    first, second, third = (registry.register(uri, run_id, {}) for _ in range(3))
    for version in (first, second, third):
        registry.promote(version)
    event = registry.rollback("third misreads night photos")
    assert (event.version, event.previous, event.action) == (second, third, "rollback")
    assert str(registry.version_by_alias(CHAMPION).version) == second
    assert ARCHIVED_TAG not in registry.client.get_model_version("test-unet", second).tags
    assert "rolled back" in registry.client.get_model_version("test-unet", third).tags[ARCHIVED_TAG]
    assert registry.rollback("and the second too").version == first


def test_rollback_without_an_earlier_champion_is_refused(tmp_path):
    lonely = ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", "lonely", artifact_location=(tmp_path / "a").as_uri())
    with pytest.raises(LookupError, match="no earlier champion"):
        lonely.rollback("why not")


@pytest.mark.parametrize(
    ("moves", "expected"),
    [
        ([("promote", "1"), ("promote", "2")], ["1", "2"]),
        ([("promote", "1"), ("promote", "2"), ("rollback", "1")], ["1"]),
        ([("promote", "1"), ("promote", "2"), ("rollback", "1"), ("promote", "3")], ["1", "3"]),
    ],
)
def test_champion_stack_replays_promotions_and_rollbacks(moves, expected):
    events = [ChampionEvent(i, "t", action, version, None, "") for i, (action, version) in enumerate(moves)]
    assert champion_stack(events) == expected


def test_a_killed_run_is_resumed_and_files_are_logged(registry, tmp_path):
    with pytest.raises(RuntimeError), registry.training_run({"epochs": 3}, {}) as run:
        run.log_epoch(1, {"val_iou": 0.1})
        raise RuntimeError("killed")
    (tmp_path / "weights.pt").write_bytes(b"abc")
    with registry.training_run({"epochs": 3}, {}, resume_run_id=run.run_id) as resumed:
        uri = resumed.log_file(tmp_path / "weights.pt", "checkpoint")
    assert resumed.run_id == run.run_id
    assert registry.client.get_run(run.run_id).info.status == "FINISHED"
    assert registry.download(uri, tmp_path / "copy").read_bytes() == b"abc"


def test_aliases_are_listed_by_version(registry, logged):
    run_id, uri = logged
    version = registry.register(uri, run_id, {})
    registry.promote(version)
    assert registry.aliases_by_version()[version] == ["challenger", "champion"]
    assert ModelRegistry(registry.tracking_uri, "no-such-model").aliases_by_version() == {}


KILLED_HALFWAY = """
import os, signal, sys
from mlflow import MlflowClient
from wms.registry.model_registry import ModelRegistry

uri, name, point, action = sys.argv[1:5]
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if point == "after the alias moved":
    MlflowClient.set_registered_model_tag = die
else:
    ModelRegistry.tag_version = die
registry = ModelRegistry(uri, name)
registry.promote(sys.argv[5]) if action == "promote" else registry.rollback("the newest misreads night photos")
"""


def kill_halfway(registry: ModelRegistry, point: str, action: str, *version: str) -> None:
    """Run the move in a process of its own that SIGKILLs itself at `point`."""
    import subprocess
    import sys

    command = [sys.executable, "-c", KILLED_HALFWAY, registry.tracking_uri, registry.model_name, point, action, *version]
    assert subprocess.run(command, timeout=300).returncode == -9


def fresh_model(registry: ModelRegistry, name: str, logged, count: int) -> tuple[ModelRegistry, list[str]]:
    run_id, uri = logged
    model = ModelRegistry(registry.tracking_uri, name)
    return model, [model.register(uri, run_id, {}) for _ in range(count)]


@pytest.mark.parametrize("point", ["after the alias moved", "after the history"])
def test_a_promotion_killed_halfway_is_finished_by_the_rerun(registry, logged, point):
    model, (first, second) = fresh_model(registry, f"killed-promotion-{point.split()[-1]}", logged, 2)
    model.promote(first)
    kill_halfway(model, point, "promote", second)
    assert str(model.version_by_alias(CHAMPION).version) == second, "the alias moves first"
    model.promote(second)  # the rerun
    history = model.champion_history()
    assert [(event.action, event.version, event.previous) for event in history] == [
        ("promote", first, None),
        ("promote", second, first),
    ]
    assert "replaced by version" in model.client.get_model_version(model.model_name, first).tags[ARCHIVED_TAG]
    assert model.rollback("back").version == first, "rollback goes where the history says"


def test_a_rollback_killed_halfway_is_recorded_as_a_rollback_before_anything_else(registry, logged):
    model, versions = fresh_model(registry, "killed-rollback", logged, 3)
    for version in versions:
        model.promote(version)
    kill_halfway(model, "after the alias moved", "rollback")
    assert str(model.version_by_alias(CHAMPION).version) == versions[1]
    event = model.finish_interrupted_move()  # what promote, rollback and `wms models history` do first
    assert (event.action, event.version, event.previous) == ("rollback", versions[1], versions[2])
    assert champion_stack(model.champion_history()) == versions[:2]
    assert "rolled back" in model.client.get_model_version(model.model_name, versions[2]).tags[ARCHIVED_TAG]
    assert model.finish_interrupted_move() is None, "nothing left to finish"
