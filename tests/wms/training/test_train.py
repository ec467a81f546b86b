import shutil
from pathlib import Path

import pytest

from tests.models import LEARNED_FLOOR, LEARNING_SCHEDULE, SYNTHETIC_PHOTOS
from wms.data.pairs import split_pairs
from wms.data.synthetic import SyntheticSpec, generate_dataset
from wms.data.validation import validate_folder
from wms.training.model import unet_for
from wms.training.settings import TrainSettings, preset
from wms.training.train import MODEL_SOURCES, code_fingerprint, evaluate, train, validates

TINY = TrainSettings(encoder="mobilenet_v2", image_size=64, epochs=2, batch_size=8)


def learned(history: list[dict]) -> list[dict]:
    """Per-epoch metrics without wall-clock times, which differ from run to run."""
    return [{key: value for key, value in epoch.items() if not key.endswith("_seconds")} for epoch in history]


@pytest.fixture(scope="module")
def splits(synthetic_root):
    return split_pairs(validate_folder(synthetic_root).valid)


def test_training_reports_each_epoch_and_scores_the_test_split(splits):
    seen = []
    result = train(splits, TINY, on_epoch=lambda epoch, metrics: seen.append((epoch, metrics)))
    assert [epoch for epoch, _ in seen] == [1, 2]
    assert {"train_loss", "val_iou", "val_dice", "lr"} <= set(seen[0][1])
    assert result.test_scores.images == len(splits["test"]) == len(result.test_ious)
    assert 0.0 <= result.test_scores.mean_iou <= 1.0
    assert result.best_epoch in (1, 2)
    assert result.checkpoint is None, "no checkpoints were asked for"


@pytest.mark.slow
def test_a_short_training_learns_the_windows_that_an_untrained_model_misses(tmp_path):
    """The floor the lineage tests rely on: a score a model reaches only by learning, so that comparing the served
    model's score with the recorded one compares something."""
    generate_dataset(tmp_path, SyntheticSpec(count=SYNTHETIC_PHOTOS, seed=1))
    photos = split_pairs(validate_folder(tmp_path).valid)
    settings = preset("demo").with_overrides(**LEARNING_SCHEDULE)
    untrained, _ = evaluate(unet_for(settings), photos["test"], settings.image_size)
    learned = train(photos, settings).test_scores
    assert untrained.mean_iou < LEARNED_FLOOR <= learned.mean_iou
    assert untrained.images_below_half == untrained.images, "an untrained model misses every window"
    assert learned.images_below_half <= learned.images // 10, "the learned one finds nine windows in ten or more"


def test_the_same_seed_trains_the_same_model(splits):
    settings = TrainSettings(encoder="mobilenet_v2", image_size=64, epochs=1, batch_size=8)
    first, second = train(splits, settings), train(splits, settings)
    assert learned(first.history) == learned(second.history)


def test_validation_every_few_epochs_then_every_epoch_in_the_last_third():
    settings = TrainSettings(epochs=9, validate_every=3)
    assert [epoch for epoch in range(1, 10) if validates(epoch, settings)] == [3, 6, 7, 8, 9]
    assert all(validates(epoch, settings.with_overrides(validate_every=1)) for epoch in range(1, 10))
    assert [epoch for epoch in range(1, 6) if validates(epoch, TrainSettings(epochs=5, validate_every=10))] == [4, 5]


def test_epochs_without_validation_report_no_val_scores_and_are_never_the_best(splits):
    result = train(splits, TINY.with_overrides(epochs=3, validate_every=2))
    assert ["val_iou" in epoch for epoch in result.history] == [False, True, True]
    assert result.best_epoch in (2, 3)


class Killed(Exception):
    pass


def train_killed_then_resumed(splits, settings, checkpoints, killed_after: int):
    """Train until the epoch `killed_after` is checkpointed, kill, train again; the resumed result and its epochs."""

    def kill(epoch, _):
        if epoch == killed_after:
            raise Killed

    with pytest.raises(Killed):
        train(splits, settings, on_epoch=kill, checkpoints=checkpoints)
    seen = []
    resumed = train(splits, settings, on_epoch=lambda epoch, _: seen.append(epoch), checkpoints=checkpoints)
    return resumed, seen


def test_a_killed_training_resumes_from_its_last_checkpoint(splits, tmp_path):
    three = TINY.with_overrides(epochs=3)
    resumed, seen = train_killed_then_resumed(splits, three, tmp_path, killed_after=2)
    assert resumed.resumed_at_epoch == 2
    assert seen == [3]
    assert len(resumed.history) == 3
    uninterrupted = train(splits, three)
    assert learned(resumed.history) == learned(uninterrupted.history), "a resumed training ends where an uninterrupted one does"


def test_a_checkpoint_of_other_settings_is_not_resumed(splits, tmp_path):
    train(splits, TINY.with_overrides(epochs=1), checkpoints=tmp_path)
    assert train(splits, TINY, checkpoints=tmp_path).resumed_at_epoch == 0


def test_early_stopping_ends_training_after_patience_epochs_without_progress(splits):
    stalled = TINY.with_overrides(epochs=6, learning_rate=1e-9, patience=1)
    result = train(splits, stalled)
    assert result.stopped_early
    assert len(result.history) < 6


def test_an_empty_split_is_refused_with_advice(splits):
    with pytest.raises(ValueError, match="add images"):
        train({**splits, "val": []}, TINY)


TWO_CYCLES = TINY.with_overrides(cycles="1:0.002:64 2:0.001:64")


def test_each_cycle_starts_from_the_best_weights_of_the_one_before(splits, tmp_path):
    seen = []
    chained = train(splits, TWO_CYCLES, on_epoch=lambda epoch, metrics: seen.append((epoch, metrics.get("cycle"))))
    assert seen == [(1, None), (2, 2.0), (3, 2.0)]
    first, second = TWO_CYCLES.schedule()
    train(splits, first, checkpoints=tmp_path / "first")
    by_hand = train(splits, second.with_overrides(initial_weights=str(tmp_path / "first" / "last.pt")))
    assert learned(chained.history[1:]) == learned(by_hand.history), "the same as cycles run one after the other"
    assert chained.test_scores == by_hand.test_scores
    assert chained.best_epoch == 1 + by_hand.best_epoch


def test_a_training_killed_in_its_second_cycle_resumes_there(splits, tmp_path):
    resumed, seen = train_killed_then_resumed(splits, TWO_CYCLES, tmp_path, killed_after=2)
    assert (resumed.resumed_at_epoch, seen) == (2, [3])
    assert learned(resumed.history) == learned(train(splits, TWO_CYCLES).history)


def test_a_finished_training_run_again_on_its_checkpoints_trains_nothing_and_gives_the_same_model(splits, tmp_path):
    finished = train(splits, TWO_CYCLES, checkpoints=tmp_path)
    assert finished.checkpoint == tmp_path / "cycle-2" / "last.pt"
    seen = []
    again = train(splits, TWO_CYCLES, on_epoch=lambda epoch, _: seen.append(epoch), checkpoints=tmp_path)
    assert (seen, again.resumed_at_epoch, again.checkpoint) == ([], 3, finished.checkpoint)
    assert learned(again.history) == learned(finished.history)
    assert (again.best_epoch, again.test_scores) == (finished.best_epoch, finished.test_scores)


def test_a_training_stopped_early_stays_stopped_when_run_again_on_its_checkpoints(splits, tmp_path):
    stalled = TINY.with_overrides(epochs=6, learning_rate=1e-9, patience=1)
    stopped = train(splits, stalled, checkpoints=tmp_path)
    seen = []
    again = train(splits, stalled, on_epoch=lambda epoch, _: seen.append(epoch), checkpoints=tmp_path)
    assert seen == [] and again.stopped_early
    assert len(again.history) == len(stopped.history) < 6


def test_the_code_fingerprint_changes_with_the_model_sources_only(tmp_path):
    checkout = Path(__file__).resolve().parents[3]
    shutil.copytree(checkout / "wms", tmp_path / "wms", ignore=shutil.ignore_patterns("__pycache__"))
    before = code_fingerprint(tmp_path)
    with (tmp_path / "wms" / "deployment" / "helm_release.py").open("a") as elsewhere:
        elsewhere.write("# a release detail\n")
    with (tmp_path / "wms" / "cli.py").open("a") as elsewhere:
        elsewhere.write("# a command's help\n")
    assert code_fingerprint(tmp_path) == before, "code that does not shape a model leaves the key alone"
    for source in MODEL_SOURCES:
        changed = next((tmp_path / source).glob("*.py"))
        original = changed.read_bytes()
        changed.write_bytes(original + b"# changed\n")
        assert code_fingerprint(tmp_path) != before, f"a change under {source} is a change of the model's code"
        changed.write_bytes(original)
    assert code_fingerprint(tmp_path) == before == code_fingerprint()


def test_the_training_says_once_what_it_computes_in(splits):
    heard = []
    result = train(splits, TINY.with_overrides(precision="fp32", epochs=1), on_note=heard.append)
    assert heard == ["fp32, as the settings ask"] == result.notes
