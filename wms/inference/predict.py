"""Running a trained model on photos: the same steps for PyTorch and ONNX Runtime, from photo to mask.

A photo is looked at twice. The first look sees the whole photo and finds the digit window roughly; the second
zooms in on a square around the largest window found and gives its edges at several times the resolution. Both
looks use the same network, trained on whole photos and on zoomed views alike (see wms.training.augment).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from wms.inference.geometry import (
    REFINE_MARGIN,
    SquareView,
    photo_box,
    place_back,
    render_photo,
    view_around_box,
    whole_photo_view,
)
from wms.inference.imaging import bounding_box, normalize, shrink, sigmoid


@dataclass(frozen=True)
class Look:
    """What the model made of one photo: the probabilities of its last view, in model pixels, and where that view
    lies on the photo, at the photo's own size (height, width)."""

    probabilities: np.ndarray
    view: SquareView
    height: int
    width: int


class Backend(Protocol):
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, 1, S, S) for a normalized float32 batch (N, 3, S, S)."""


@dataclass
class Segmenter:
    """Turns RGB photos of any size into window probabilities and bool masks of the same size."""

    backend: Backend
    image_size: int
    threshold: float = 0.5
    refine: bool = True
    """Take the second, zoomed look at the window found by the first."""
    zoom_rounds: int = 1
    """Zoomed looks in a row, each framed on the window the one before found (with refine)."""
    flip_zoomed: bool = False
    """Average the zoomed look with its mirror image (twice the cost of that look)."""
    cleanup: str = "largest"
    """'largest': keep the largest region, holes filled; 'convex': its convex hull; 'none': the raw threshold."""

    zoom_margin: float = REFINE_MARGIN
    """The zoomed view's side over the long side of the window found (training draws 1.2 to 2.4)."""
    zoom_on: str = "area"
    """Which region of the first look the zoom looks at: 'area', the largest; 'mass', the most window probability."""
    max_side: int = 0
    """Photos with a longer side are shrunk to it before looking (0: four times image_size, the resolution training
    reads); the probabilities and masks still come back at the photo's own size."""

    @property
    def longest_side(self) -> int:
        return self.max_side or 4 * self.image_size

    def probabilities_batch(self, photos: list[np.ndarray], sizes: list[tuple[int, int]] | None = None) -> list[np.ndarray]:
        """Probability maps of a batch of photos: one model batch for the first look, one per zoomed round.

        Each map is (H, W) of its photo, or of `sizes` (height, width) when the photos were decoded smaller.
        """
        return [place(look) for look in self.looks_batch(photos, sizes)]

    def looks_batch(self, photos: list[np.ndarray], sizes: list[tuple[int, int]] | None = None) -> list[Look]:
        """The model's work on a batch, in model pixels: nothing yet at the photos' own sizes (see `answer`)."""
        if not photos:
            return []
        sizes = sizes or [photo.shape[:2] for photo in photos]
        smalls = [shrink(photo, self.longest_side) for photo in photos]
        views = [whole_photo_view(*small.shape[:2], self.image_size) for small in smalls]
        first = self._look(smalls, views)
        chosen = dict(enumerate(views))
        looks = dict(enumerate(first))
        for _ in range(self.zoom_rounds if self.refine else 0):
            zoom_views = self._zoom_views(smalls, chosen, looks)
            zoomed = self._look([smalls[i] for i in zoom_views], list(zoom_views.values()), flip=self.flip_zoomed)
            chosen.update(zoom_views)  # the closer look decides, also when it finds no window there
            looks.update(zip(zoom_views, zoomed, strict=True))
        return [
            Look(looks[i], chosen[i].scaled(max(size) / max(small.shape[:2])), *size)
            for i, (small, size) in enumerate(zip(smalls, sizes, strict=True))
        ]

    def answer(self, look: Look) -> tuple[np.ndarray, float]:
        """(cleaned bool mask, confidence) at the photo's size, as masks_batch and window_confidence give them.

        A look with nothing above the threshold places nothing at full size (bilinear sampling never exceeds its
        samples), so a huge photo without a window costs one bool mask, not a float map four times its size."""
        peak = float(look.probabilities.max())
        if peak <= self.threshold:
            return np.zeros((look.height, look.width), dtype=bool), 1.0 - peak
        probabilities = place(look)
        mask = self.clean(probabilities > self.threshold)
        return mask, window_confidence(probabilities, mask)

    def _zoom_views(
        self, smalls: list[np.ndarray], chosen: dict[int, SquareView], looks: dict[int, np.ndarray]
    ) -> dict[int, SquareView]:
        """A view around the window that each photo's latest look found (none where it found no window)."""
        zoom_views = {}
        for index, probabilities in looks.items():
            box = largest_region_box(probabilities > self.threshold, probabilities if self.zoom_on == "mass" else None)
            window = photo_box(box, chosen[index], *smalls[index].shape[:2]) if box else None
            if window:
                zoom_views[index] = view_around_box(window, self.image_size, self.zoom_margin)
        return zoom_views

    def probabilities(self, photo: np.ndarray) -> np.ndarray:
        return self.probabilities_batch([photo])[0]

    def masks_batch(
        self, photos: list[np.ndarray], sizes: list[tuple[int, int]] | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(probabilities, cleaned bool mask) of each photo, at its size or at `sizes` as probabilities_batch."""
        return [
            (probabilities, self.clean(probabilities > self.threshold))
            for probabilities in self.probabilities_batch(photos, sizes)
        ]

    def mask(self, photo: np.ndarray) -> np.ndarray:
        return self.masks_batch([photo])[0][1]

    def clean(self, mask: np.ndarray) -> np.ndarray:
        """The mask after `cleanup`, computed inside the box around its pixels (a photo is mostly background)."""
        if self.cleanup == "none" or not mask.any():
            return mask
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        region = ndimage.binary_fill_holes(largest_region(mask[box]))
        cleaned = np.zeros_like(mask)
        cleaned[box] = convex_hull(region) if self.cleanup == "convex" else region
        return cleaned

    def _look(self, photos: list[np.ndarray], views: list[SquareView], flip: bool = False) -> list[np.ndarray]:
        """Window probabilities (size, size) of each view, in model pixels."""
        if not photos:
            return []
        squares = np.stack([render_photo(photo, view) for photo, view in zip(photos, views, strict=True)])
        if not flip:
            return [sigmoid(logit[0]) for logit in self.backend(normalize(squares))]
        logits = self.backend(normalize(np.concatenate([squares, squares[:, :, ::-1]])))
        count = len(photos)
        return [(sigmoid(logits[i, 0]) + sigmoid(logits[count + i, 0, :, ::-1])) / 2 for i in range(count)]


def place(look: Look) -> np.ndarray:
    """The look's probabilities at the photo's own size (0 outside its view)."""
    return place_back(look.probabilities, look.view, look.height, look.width)


def largest_region(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The largest connected region of a bool mask, by pixel count or by the sum of `weights` over it."""
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask.copy()
    sizes = ndimage.sum_labels(mask if weights is None else weights, labels, index=np.arange(1, count + 1))
    return labels == int(np.argmax(sizes)) + 1


def largest_region_box(mask: np.ndarray, weights: np.ndarray | None = None) -> list[int] | None:
    """The bounding box [x_min, y_min, x_max, y_max] of the largest connected region of a mask, or None."""
    return bounding_box(largest_region(mask, weights))


def convex_hull(mask: np.ndarray) -> np.ndarray:
    """The filled convex hull of a bool mask's pixels (the digit window is a convex quadrilateral)."""
    rows, cols = np.nonzero(mask)
    if rows.size < 3:
        return mask
    points = np.column_stack([cols, rows]).astype(np.float64)
    try:
        hull = ConvexHull(points)
    except QhullError:  # all pixels on one line
        return mask
    outline = Image.new("L", (mask.shape[1], mask.shape[0]), 0)
    ImageDraw.Draw(outline).polygon([tuple(point) for point in points[hull.vertices]], fill=1, outline=1)
    return np.asarray(outline, dtype=bool)


def window_confidence(probabilities: np.ndarray, mask: np.ndarray) -> float:
    """Mean window probability inside the mask; for an empty mask, how sure the model is that there is no window."""
    return float(probabilities[mask].mean()) if mask.any() else float(1.0 - probabilities.max())


def window_polygon(mask: np.ndarray) -> list[list[int]]:
    """The outline of the window as the convex polygon [[x, y], ...] (clockwise in image pixels) around its pixels.

    Only the first and last pixel of each row can be corners of the hull, so only those are handed to Qhull.
    """
    box = bounding_box(mask)
    if box is None:
        return []
    x_min, y_min, x_max, y_max = box
    window = mask[y_min : y_max + 1, x_min : x_max + 1]
    rows = np.flatnonzero(window.any(axis=1))
    first = window[rows].argmax(axis=1)
    last = window.shape[1] - 1 - window[rows, ::-1].argmax(axis=1)
    # the pixel corners: left edge of each row's first pixel, right edge of its last, top and bottom of both
    xs = np.concatenate([first, first, last + 1, last + 1])
    ys = np.concatenate([rows, rows + 1, rows, rows + 1])
    corners = np.column_stack([xs, ys]).astype(np.float64)
    try:
        hull = ConvexHull(corners)
    except QhullError:  # all on one line: the box is the outline
        return [[x_min, y_min], [x_max + 1, y_min], [x_max + 1, y_max + 1], [x_min, y_max + 1]]
    return [[int(x) + x_min, int(y) + y_min] for x, y in corners[hull.vertices]]


class OnnxBackend:
    def __init__(self, model_path: Path, threads: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name

    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input: batch})[0]


def onnx_segmenter(model_path: Path) -> Segmenter:
    """A Segmenter for an ONNX file exported by wms.training.export (its input size is in its metadata)."""
    backend = OnnxBackend(model_path)
    return Segmenter(backend=backend, image_size=int(backend.metadata()["wms.image_size"]))
