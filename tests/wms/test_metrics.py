import numpy as np
import pytest

from wms.metrics import dice, iou, score_masks


def masks():
    truth = np.zeros((10, 10), dtype=bool)
    truth[0:4, 0:5] = True  # 20 pixels
    prediction = np.zeros((10, 10), dtype=bool)
    prediction[0:4, 0:10] = True  # 40 pixels, 20 shared
    return prediction, truth


def test_iou_and_dice_values():
    prediction, truth = masks()
    assert iou(prediction, truth) == pytest.approx(0.5)
    assert dice(prediction, truth) == pytest.approx(2 * 20 / 60)


def test_two_empty_masks_agree():
    empty = np.zeros((4, 4), dtype=bool)
    assert iou(empty, empty) == 1.0
    assert dice(empty, empty) == 1.0


def test_score_masks_averages_per_image():
    prediction, truth = masks()
    scores = score_masks([prediction, truth], [truth, truth])
    assert scores.mean_iou == pytest.approx(0.75)
    assert scores.images == 2


def test_score_masks_rejects_mismatched_lists():
    with pytest.raises(ValueError, match="same positive number"):
        score_masks([], [])
