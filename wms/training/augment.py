"""Augmentations that keep a photo and its mask aligned, drawn from a seeded generator.

Each training sample is a random square view (wms.inference.geometry): either the whole photo, moved, scaled and turned a
little, or a zoom onto the digit window with a random margin and offset, the view the second look of inference
takes; a fifth of the views also get a quarter, half or three-quarter turn.
The photometric changes (brightness, contrast, saturation, blur, JPEG noise) touch the photo only.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from wms.inference.geometry import REFINE_MARGIN, SquareView, render_mask, render_photo, view_around_box, whole_photo_view


@dataclass(frozen=True)
class AugmentSettings:
    zoom_probability: float = 0.5
    """Share of samples that zoom onto the window rather than show the whole photo."""
    zoom_margin: tuple[float, float] = (REFINE_MARGIN * 0.75, REFINE_MARGIN * 1.5)
    """Range of the zoomed view's side over the window's long side."""
    shift: float = 0.12
    """Largest move of the view's centre, as a share of its side."""
    whole_scale: tuple[float, float] = (0.85, 1.25)
    """Range of the whole-photo view's side over the photo's long side."""
    max_angle: float = 12.0
    quarter_turn_probability: float = 0.2
    """Share of views also turned by 90, 180 or 270 degrees: some meters are photographed on their side."""
    flip_probability: float = 0.5
    colour: float = 0.3
    """Largest relative change of brightness, contrast and saturation."""
    blur_probability: float = 0.2
    jpeg_probability: float = 0.3


def augmented_view(
    photo: np.ndarray, mask: np.ndarray, window: list[int] | None, size: int, rng: np.random.Generator, settings: AugmentSettings
) -> tuple[np.ndarray, np.ndarray]:
    """A random (size, size) view of a photo (uint8 RGB) and of its mask (bool), aligned, then photometric noise."""
    view = random_view(photo.shape[0], photo.shape[1], window, size, rng, settings)
    image, target = render_photo(photo, view), render_mask(mask, view)
    if rng.random() < settings.flip_probability:
        image, target = image[:, ::-1], target[:, ::-1]
    return np.ascontiguousarray(photometric(image, rng, settings)), np.ascontiguousarray(target)


def random_view(
    height: int, width: int, window: list[int] | None, size: int, rng: np.random.Generator, settings: AugmentSettings
) -> SquareView:
    if window is not None and rng.random() < settings.zoom_probability:
        base = view_around_box(window, size, margin=float(rng.uniform(*settings.zoom_margin)))
    else:
        whole = whole_photo_view(height, width, size)
        base = SquareView(whole.centre_x, whole.centre_y, whole.side * float(rng.uniform(*settings.whole_scale)), size)
    shift_x, shift_y = rng.uniform(-settings.shift, settings.shift, size=2) * base.side
    return SquareView(
        centre_x=base.centre_x + float(shift_x),
        centre_y=base.centre_y + float(shift_y),
        side=base.side,
        size=size,
        angle=float(rng.uniform(-settings.max_angle, settings.max_angle)) + quarter_turn(rng, settings),
    )


def quarter_turn(rng: np.random.Generator, settings: AugmentSettings) -> float:
    """0 degrees, or with `quarter_turn_probability` one of 90, 180 and 270."""
    return 90.0 * int(rng.integers(1, 4)) if rng.random() < settings.quarter_turn_probability else 0.0


def photometric(image: np.ndarray, rng: np.random.Generator, settings: AugmentSettings) -> np.ndarray:
    """Colour jitter, sometimes a Gaussian blur, sometimes a JPEG round trip; the geometry is unchanged."""
    picture = Image.fromarray(image)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        picture = enhancer(picture).enhance(float(rng.uniform(1 - settings.colour, 1 + settings.colour)))
    if rng.random() < settings.blur_probability:
        picture = picture.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.5))))
    if rng.random() < settings.jpeg_probability:
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=int(rng.integers(30, 90)))
        picture = Image.open(buffer).convert("RGB")
    return np.asarray(picture)
