import numpy as np

from wms.inference.imaging import bounding_box
from wms.training.augment import AugmentSettings, augmented_view, photometric, random_view


def _photo_with_window():
    photo = np.zeros((300, 400, 3), dtype=np.uint8)
    photo[120:150, 100:260] = 255
    return photo, photo[..., 0] > 0


def test_the_mask_follows_the_photo_through_every_geometric_change():
    photo, mask = _photo_with_window()
    no_colour = AugmentSettings(colour=0.0, blur_probability=0.0, jpeg_probability=0.0)
    for seed in range(20):
        image, target = augmented_view(photo, mask, bounding_box(mask), 96, np.random.default_rng(seed), no_colour)
        assert image.shape == (96, 96, 3) and target.shape == (96, 96)
        bright = image[..., 0] > 127
        assert (bright == target).mean() > 0.98


def test_the_same_generator_seed_gives_the_same_view():
    photo, mask = _photo_with_window()
    first = augmented_view(photo, mask, bounding_box(mask), 64, np.random.default_rng(3), AugmentSettings())
    second = augmented_view(photo, mask, bounding_box(mask), 64, np.random.default_rng(3), AugmentSettings())
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_zoomed_views_make_the_window_larger_than_whole_views():
    always, never = AugmentSettings(zoom_probability=1.0), AugmentSettings(zoom_probability=0.0)
    rng = np.random.default_rng(0)
    zoomed = [random_view(300, 400, [180, 140, 219, 149], 64, rng, always).side for _ in range(20)]
    whole = [random_view(300, 400, [180, 140, 219, 149], 64, rng, never).side for _ in range(20)]
    assert max(zoomed) < min(whole)


def test_a_photo_without_a_window_is_only_shown_whole():
    rng = np.random.default_rng(0)
    sides = {random_view(300, 400, None, 64, rng, AugmentSettings(zoom_probability=1.0)).side >= 300 for _ in range(10)}
    assert sides == {True}


def test_photometric_noise_keeps_the_shape_and_changes_the_pixels():
    image = np.random.default_rng(0).integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
    strong = AugmentSettings(colour=0.5, blur_probability=1.0, jpeg_probability=1.0)
    changed = photometric(image, np.random.default_rng(1), strong)
    assert changed.shape == image.shape and changed.dtype == np.uint8
    assert not np.array_equal(changed, image)


def test_quarter_turns_show_the_window_on_its_side():
    photo, mask = _photo_with_window()  # the window is 160 wide and 30 high
    turned = AugmentSettings(quarter_turn_probability=1.0, max_angle=0.0, shift=0.0, colour=0.0, blur_probability=0.0)
    angles = set()
    for seed in range(12):
        angle = random_view(300, 400, bounding_box(mask), 96, np.random.default_rng(seed), turned).angle
        _, target = augmented_view(photo, mask, bounding_box(mask), 96, np.random.default_rng(seed), turned)
        x_min, y_min, x_max, y_max = bounding_box(target)
        assert (y_max - y_min > x_max - x_min) == (angle in (90.0, 270.0))
        angles.add(angle)
    assert angles == {90.0, 180.0, 270.0}
