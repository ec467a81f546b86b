"""Square views of a photo: what the model sees when it looks at the whole photo or zooms in on the window.

A view is a square of `side` photo pixels centred on (`centre_x`, `centre_y`), turned by `angle` degrees, and
sampled to `size` x `size` model pixels. Training draws random views (augmentation); inference looks at the
whole photo, then at a view around the window it found, and places that view's answer back onto the photo.
Only numpy and Pillow are used here, so the serving image can import this module without torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from wms.inference.imaging import MASK_THRESHOLD

REFINE_MARGIN = 1.6
"""A refining view spans this many times the long side of the window found by the first look."""


@dataclass(frozen=True)
class SquareView:
    centre_x: float
    centre_y: float
    side: float
    size: int
    angle: float = 0.0

    @property
    def scale(self) -> float:
        """Photo pixels per model pixel."""
        return self.side / self.size

    def scaled(self, factor: float) -> SquareView:
        """The same view in a copy of the photo `factor` times larger."""
        return SquareView(self.centre_x * factor, self.centre_y * factor, self.side * factor, self.size, self.angle)

    def to_photo(self) -> tuple[float, ...]:
        """PIL affine coefficients mapping a model pixel (u, v) to the photo pixel it samples."""
        cos, sin = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        k, half = self.scale, self.size / 2
        return (
            k * cos,
            -k * sin,
            self.centre_x - k * (cos * half - sin * half),
            k * sin,
            k * cos,
            self.centre_y - k * (sin * half + cos * half),
        )

    def to_model(self) -> tuple[float, ...]:
        """PIL affine coefficients mapping a photo pixel (x, y) to the model pixel that saw it."""
        cos, sin = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        k, half = self.scale, self.size / 2
        return (
            cos / k,
            sin / k,
            half - (cos * self.centre_x + sin * self.centre_y) / k,
            -sin / k,
            cos / k,
            half - (-sin * self.centre_x + cos * self.centre_y) / k,
        )


def whole_photo_view(height: int, width: int, size: int) -> SquareView:
    """The view that shows the whole photo, centred, its long side filling the square."""
    return SquareView(centre_x=width / 2, centre_y=height / 2, side=float(max(height, width)), size=size)


def view_around_box(box: list[int], size: int, margin: float = REFINE_MARGIN) -> SquareView:
    """A view centred on a box [x_min, y_min, x_max, y_max] whose side is `margin` times the box's long side."""
    x_min, y_min, x_max, y_max = box
    long_side = max(x_max - x_min + 1, y_max - y_min + 1, 8)
    return SquareView(centre_x=(x_min + x_max + 1) / 2, centre_y=(y_min + y_max + 1) / 2, side=long_side * margin, size=size)


def render_photo(photo: np.ndarray, view: SquareView) -> np.ndarray:
    """The view of an RGB photo (H, W, 3) as a (size, size, 3) uint8 square; outside the photo is black."""
    return np.asarray(_sample(Image.fromarray(photo), view))


def render_mask(mask: np.ndarray, view: SquareView) -> np.ndarray:
    """The view of a bool mask, sampled like its photo (then thresholded, so edges stay in place)."""
    return np.asarray(_sample(Image.fromarray(mask.astype(np.uint8) * 255), view)) > MASK_THRESHOLD


def _sample(image: Image.Image, view: SquareView) -> Image.Image:
    """Bilinear sampling of the view; a view that shrinks the photo first averages it down (no aliasing)."""
    coefficients = view.to_photo()
    factor = int(view.scale)
    if factor >= 2:
        image = image.reduce(factor)  # box filter: reduced pixel j spans photo pixels [j*f, (j+1)*f)
        coefficients = tuple(value / factor for value in coefficients)
    return image.transform((view.size, view.size), Image.AFFINE, coefficients, Image.BILINEAR)


def place_back(probabilities: np.ndarray, view: SquareView, height: int, width: int) -> np.ndarray:
    """Map a (size, size) probability map of a view onto a (height, width) photo; outside the view it is 0.

    Only the part of the photo that the view covers is sampled, so zooming onto a small window stays cheap.
    """
    placed = np.zeros((height, width), dtype=np.float32)
    region = covered_region(view, height, width)
    if region is None:
        return placed
    x_min, y_min, x_max, y_max = region
    a, b, c, d, e, f = view.to_model()
    shifted = (a, b, c + a * x_min + b * y_min, d, e, f + d * x_min + e * y_min)
    image = Image.fromarray(probabilities.astype(np.float32))
    placed[y_min:y_max, x_min:x_max] = np.asarray(
        image.transform((x_max - x_min, y_max - y_min), Image.AFFINE, shifted, Image.BILINEAR)
    )
    return placed


def photo_box(model_box: list[int], view: SquareView, height: int, width: int) -> list[int] | None:
    """A box [x_min, y_min, x_max, y_max] in model pixels as the photo box around it, clipped to the photo."""
    x_min, y_min, x_max, y_max = model_box
    return _clipped_bounds(view, [(x_min, y_min), (x_max + 1, y_min), (x_min, y_max + 1), (x_max + 1, y_max + 1)], height, width)


def covered_region(view: SquareView, height: int, width: int) -> list[int] | None:
    """The rectangle of photo pixels [x_min, y_min, x_max, y_max) that the view covers, or None if none."""
    size = view.size
    box = _clipped_bounds(view, [(0, 0), (size, 0), (0, size), (size, size)], height, width)
    return None if box is None else [box[0], box[1], box[2] + 1, box[3] + 1]


def _clipped_bounds(view: SquareView, corners: list[tuple[float, float]], height: int, width: int) -> list[int] | None:
    a, b, c, d, e, f = view.to_photo()
    xs = [a * u + b * v + c for u, v in corners]
    ys = [d * u + e * v + f for u, v in corners]
    x_min, y_min = max(0, math.floor(min(xs))), max(0, math.floor(min(ys)))
    x_max, y_max = min(width - 1, math.ceil(max(xs)) - 1), min(height - 1, math.ceil(max(ys)) - 1)
    return None if x_min > x_max or y_min > y_max else [x_min, y_min, x_max, y_max]
