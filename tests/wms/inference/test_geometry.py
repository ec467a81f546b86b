import numpy as np
import pytest

from wms.inference.geometry import (
    SquareView,
    covered_region,
    photo_box,
    place_back,
    render_mask,
    render_photo,
    view_around_box,
    whole_photo_view,
)
from wms.inference.scores import iou


@pytest.fixture
def window_mask():
    mask = np.zeros((300, 400), dtype=bool)
    mask[120:150, 100:260] = True
    return mask


@pytest.mark.parametrize(
    "view",
    [whole_photo_view(300, 400, 128), view_around_box([100, 120, 259, 149], 128), SquareView(180, 135, 250, 128, angle=12)],
    ids=["whole", "zoom", "turned"],
)
def test_a_mask_seen_through_a_view_and_placed_back_is_the_mask(window_mask, view):
    seen = render_mask(window_mask, view)
    placed = place_back(seen.astype(np.float32), view, 300, 400) > 0.5
    assert iou(placed, window_mask) > 0.9


def test_the_whole_view_shows_the_whole_photo_centred():
    photo = np.full((300, 400, 3), 200, dtype=np.uint8)
    square = render_photo(photo, whole_photo_view(300, 400, 100))
    assert square.shape == (100, 100, 3)
    assert square[50, 50].tolist() == [200, 200, 200]
    assert square[5, 50].tolist() == [0, 0, 0]  # above the photo: padding


def test_a_zoomed_view_spans_its_margin_around_the_box():
    view = view_around_box([100, 120, 259, 149], 128, margin=1.5)
    assert view.side == pytest.approx(160 * 1.5)
    assert (view.centre_x, view.centre_y) == (180, 135)


def test_photo_box_maps_model_pixels_back_to_the_photo():
    view = whole_photo_view(300, 400, 100)  # 4 photo pixels per model pixel, the photo starts at model row 12.5
    assert photo_box([0, 0, 99, 99], view, 300, 400) == [0, 0, 399, 299]
    x_min, y_min, x_max, y_max = photo_box([25, 50, 49, 59], view, 300, 400)
    assert (x_min, x_max) == (100, 199)
    assert y_min == pytest.approx(150, abs=1) and y_max == pytest.approx(189, abs=1)


def test_a_view_outside_the_photo_covers_nothing():
    outside = SquareView(centre_x=-500, centre_y=-500, side=100, size=64)
    assert covered_region(outside, 300, 400) is None
    assert not place_back(np.ones((64, 64), np.float32), outside, 300, 400).any()


@pytest.mark.parametrize("shape", [(300, 400), (400, 300), (37, 91)])
def test_a_whole_view_of_any_shape_goes_back_to_the_photo_size(shape):
    view = whole_photo_view(*shape, 64)
    square = render_photo(np.full((*shape, 3), 200, dtype=np.uint8), view)
    assert square.shape == (64, 64, 3) and square[32, 32].tolist() == [200, 200, 200]
    placed = place_back(np.ones((64, 64), dtype=np.float32), view, *shape)
    assert placed.shape == shape and placed[shape[0] // 2, shape[1] // 2] == pytest.approx(1.0)
