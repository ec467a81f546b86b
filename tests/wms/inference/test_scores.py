import numpy as np
import pytest

from wms.inference.scores import dice, iou, score_masks


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


def test_split_scores_count_pixels_over_the_split_and_poor_images():
    prediction, truth = masks()
    empty = np.zeros_like(truth)
    scores = score_masks([prediction, empty], [truth, truth])
    assert scores.dataset_iou == pytest.approx(20 / 60)  # (20 + 0) / (40 + 20)
    assert scores.precision == pytest.approx(20 / 40)
    assert scores.recall == pytest.approx(20 / 40)
    assert scores.images_below_half == 1  # the empty prediction; IoU 0.5 itself is not below half
    assert set(scores.as_dict("test_")) >= {"test_mean_iou", "test_dataset_iou", "test_images_below_half"}


def test_masks_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match="same size"):
        score_masks([np.zeros((2, 2), bool)], [np.zeros((3, 3), bool)])
