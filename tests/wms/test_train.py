import pytest

from wms.data import split_pairs
from wms.train import TrainSettings, train
from wms.validation import validate_folder

TINY = TrainSettings(encoder="mobilenet_v2", image_size=64, epochs=2, batch_size=8)


@pytest.fixture(scope="module")
def splits(synthetic_root):
    return split_pairs(validate_folder(synthetic_root).valid)


def test_training_reports_each_epoch_and_scores_the_test_split(splits):
    seen = []
    result = train(splits, TINY, on_epoch=lambda epoch, metrics: seen.append((epoch, metrics)))
    assert [epoch for epoch, _ in seen] == [1, 2]
    assert set(seen[0][1]) == {"train_loss", "val_iou"}
    assert result.test_scores.images == len(splits["test"])
    assert 0.0 <= result.test_scores.mean_iou <= 1.0
    assert result.best_epoch in (1, 2)


def test_the_same_seed_trains_the_same_model(splits):
    settings = TrainSettings(encoder="mobilenet_v2", image_size=64, epochs=1, batch_size=8)
    first, second = train(splits, settings), train(splits, settings)
    assert first.history == second.history


def test_an_empty_split_is_refused_with_advice(splits):
    with pytest.raises(ValueError, match="add images"):
        train({**splits, "val": []}, TINY)
