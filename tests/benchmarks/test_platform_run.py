import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import platform_run

from wms.registry.model_registry import CHAMPION, ModelRegistry
from wms.training.model import build_unet

pytestmark = pytest.mark.integration
PARAMS = {"encoder": "mobilenet_v2", "cycles": "1:0.002:64 2:0.001:64", "batch_size": 8, "seed": 0, "threads": 2}


def test_a_training_in_two_cycles_is_summarised_cycle_by_cycle_with_its_version(tmp_path):
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", "test-unet", artifact_location=(tmp_path / "a").as_uri())
    with registry.training_run(PARAMS, {"preset": "cpu", "data_version": "abc"}) as run:
        run.log_epoch(1, {"train_loss": 1.0, "train_pass_seconds": 30.0, "val_iou": 0.5})
        run.log_epoch(2, {"train_loss": 0.8, "train_pass_seconds": 60.0, "val_iou": 0.7, "cycle": 2.0})
        run.log_epoch(3, {"train_loss": 0.7, "train_pass_seconds": 62.0, "val_iou": 0.6, "cycle": 2.0})
        facts = {"best_epoch": 2, "epochs_run": 3, "train_seconds": 180.0, "resumed_at_epoch": 0}
        run.log_epoch(2, {"test_mean_iou": 0.9, "test_mean_dice": 0.94} | facts)
        uri = run.log_model(build_unet("mobilenet_v2"), 64)
    version = registry.register(uri, run.run_id, {"gate.test_scores": "passed"})
    registry.promote(version)

    summary = platform_run.summarise(registry, platform_run.newest_version(registry))

    assert (summary["version"], summary["run_status"], summary["preset"]) == (version, "FINISHED", "cpu")
    assert CHAMPION in summary["aliases"] and summary["gates"] == {"test_scores": "passed"}
    assert summary["test"] == {"mean_dice": 0.94, "mean_iou": 0.9}
    assert (summary["best_epoch"], summary["epochs_run"], summary["train_minutes"]) == (2, 3, 3.0)
    first, second = summary["cycles"]
    assert (first["cycle"], first["epochs"], first["best_val_iou"]) == (1, [1, 1], 0.5)
    assert (second["cycle"], second["epochs"], second["best_epoch"]) == (2, [2, 3], 2)
    assert second["train_pass_seconds"] == {"median": 61.0, "min": 60.0, "max": 62.0}
    assert 0 <= first["minutes"] <= summary["run_minutes"]


def test_a_store_without_versions_is_refused_with_what_to_run(tmp_path):
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", "test-unet", artifact_location=(tmp_path / "a").as_uri())
    with pytest.raises(SystemExit, match="run `wms run` first"):
        platform_run.newest_version(registry)
