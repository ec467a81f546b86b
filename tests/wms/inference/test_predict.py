"""The inference pipeline with a brightness 'model': the window is whatever is white, so geometry is tested alone."""

import numpy as np
import pytest

from wms.inference.imaging import PIXEL_MEAN, PIXEL_STD
from wms.inference.predict import Segmenter, convex_hull, largest_region, window_confidence
from wms.inference.scores import iou

HALF_GREY = float(((147.5 / 255 - PIXEL_MEAN) / PIXEL_STD).min())
"""Half-way between the photo's background (40) and the window (255), normalized: the edge of the window."""


def bright_backend(looks: list[int] | None = None):
    def backend(batch: np.ndarray) -> np.ndarray:
        if looks is not None:
            looks.append(len(batch))
        return np.where(batch.min(axis=1, keepdims=True) > HALF_GREY, 10.0, -10.0).astype(np.float32)

    return backend


@pytest.fixture
def photo_and_window():
    photo = np.full((600, 800, 3), 40, dtype=np.uint8)
    photo[250:290, 300:520] = 255
    return photo, photo[..., 0] == 255


@pytest.mark.parametrize("refine", [False, True])
def test_the_mask_lands_on_the_window_at_the_photo_size(photo_and_window, refine):
    photo, window = photo_and_window
    mask = Segmenter(bright_backend(), image_size=64, refine=refine).mask(photo)
    assert mask.shape == window.shape
    assert iou(mask, window) > (0.9 if refine else 0.4)  # 12.5 photo pixels per model pixel without the zoom


def test_the_zoomed_look_sharpens_the_edges(photo_and_window):
    photo, window = photo_and_window
    whole = iou(Segmenter(bright_backend(), 48, refine=False).mask(photo), window)
    zoomed = iou(Segmenter(bright_backend(), 48, refine=True).mask(photo), window)
    assert zoomed > whole


def test_a_batch_takes_one_model_call_per_look_and_mirrors_double_the_zoomed_one(photo_and_window):
    photo, _ = photo_and_window
    empty = np.zeros_like(photo)
    looks: list[int] = []
    Segmenter(bright_backend(looks), 64).masks_batch([photo, empty, photo])
    assert looks == [3, 2]  # the empty photo has no window to zoom onto
    looks.clear()
    Segmenter(bright_backend(looks), 64, flip_zoomed=True).masks_batch([photo])
    assert looks == [1, 2]


def test_an_answer_one_photo_at_a_time_is_the_batchs_and_a_windowless_photo_makes_no_float_map(photo_and_window):
    photo, _ = photo_and_window
    empty = np.full_like(photo, 40)
    segmenter = Segmenter(bright_backend(), 64)
    looks = segmenter.looks_batch([photo, empty], sizes=[(1200, 1600), (1200, 1600)])
    for look, (probabilities, mask) in zip(looks, segmenter.masks_batch([photo, empty], [(1200, 1600)] * 2), strict=True):
        answered, confidence = segmenter.answer(look)
        assert np.array_equal(answered, mask) and answered.shape == (1200, 1600)
        assert confidence == pytest.approx(window_confidence(probabilities, mask), abs=1e-6)
    assert not segmenter.answer(looks[1])[0].any()


def test_cleanup_keeps_the_largest_region_and_fills_its_holes():
    mask = np.zeros((50, 50), dtype=bool)
    mask[10:30, 10:40] = True
    mask[15:20, 20:25] = False  # a hole
    mask[45:47, 45:47] = True  # a speck
    cleaned = Segmenter(bright_backend(), 32).clean(mask)
    assert cleaned[15:20, 20:25].all() and not cleaned[45:47, 45:47].any()
    assert largest_region(np.zeros((4, 4), bool)).sum() == 0


def test_convex_hull_fills_a_notched_quadrilateral():
    mask = np.zeros((40, 40), dtype=bool)
    mask[10:30, 5:35] = True
    mask[10:15, 15:25] = False  # a notch in the top edge
    hull = convex_hull(mask)
    assert hull[10:15, 15:25].all()
    assert hull.sum() == pytest.approx(20 * 30, rel=0.05)


def test_a_large_photo_is_looked_at_shrunk_and_answered_at_full_size():
    photo = np.full((3000, 4000, 3), 40, dtype=np.uint8)
    photo[1250:1450, 1500:2600] = 255
    window = photo[..., 0] == 255
    segmenter = Segmenter(bright_backend(), image_size=64)
    assert segmenter.longest_side == 256
    mask = segmenter.mask(photo)
    assert mask.shape == window.shape
    unshrunk = Segmenter(bright_backend(), image_size=64, max_side=4000).mask(photo)
    assert iou(mask, window) > 0.9
    assert abs(iou(mask, window) - iou(unshrunk, window)) < 0.02  # the zoomed look sees 64 pixels either way


def test_the_polygon_of_a_rectangle_is_its_four_corners():
    from wms.inference.predict import window_polygon

    mask = np.zeros((50, 80), dtype=bool)
    mask[10:20, 30:60] = True
    assert sorted(map(tuple, window_polygon(mask))) == [(30, 10), (30, 20), (60, 10), (60, 20)]
    assert window_polygon(np.zeros((5, 5), dtype=bool)) == []


def test_the_zoom_can_pick_the_region_of_most_probability_rather_than_the_largest():
    from wms.inference.predict import largest_region_box

    mask = np.zeros((40, 60), dtype=bool)
    mask[5:25, 5:25] = True  # large and faint
    mask[30:36, 40:55] = True  # small and sure
    probabilities = np.where(mask, 0.55, 0.0)
    probabilities[30:36, 40:55] = 0.99
    assert largest_region_box(mask) == [5, 5, 24, 24]
    assert largest_region_box(mask, probabilities) == [5, 5, 24, 24]  # 400 x 0.55 > 90 x 0.99
    probabilities[5:25, 5:25] = 0.2
    assert largest_region_box(mask, probabilities) == [40, 30, 54, 35]


def test_the_polygon_of_a_turned_shape_holds_all_its_pixels():
    from scipy.spatial import Delaunay

    from wms.inference.predict import window_polygon

    yy, xx = np.mgrid[:80, :100]
    mask = (np.abs((xx - 50) * 0.8 + (yy - 40) * 0.6) < 30) & (np.abs(-(xx - 50) * 0.6 + (yy - 40) * 0.8) < 8)
    polygon = window_polygon(mask)
    centres = np.column_stack([xx[mask] + 0.5, yy[mask] + 0.5])  # pixel (x, y) spans [x, x + 1) x [y, y + 1)
    assert (Delaunay(polygon).find_simplex(centres) >= 0).all()
    assert 4 <= len(polygon) < 40  # an outline, not every pixel


def test_each_extra_zoom_round_costs_one_model_call_per_photo_with_a_window(photo_and_window):
    photo, window = photo_and_window
    looks: list[int] = []
    mask = Segmenter(bright_backend(looks), 64, zoom_rounds=2).masks_batch([photo, np.zeros_like(photo)])[0][1]
    assert looks == [2, 1, 1]
    assert iou(mask, window) > 0.9


def test_a_tighter_zoom_sees_the_window_at_more_model_pixels(photo_and_window):
    photo, window = photo_and_window
    tight = iou(Segmenter(bright_backend(), 48, zoom_margin=1.2).mask(photo), window)
    loose = iou(Segmenter(bright_backend(), 48, zoom_margin=2.4).mask(photo), window)
    assert tight > loose > 0.8
