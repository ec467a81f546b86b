"""Running a trained model on photos: the same steps for PyTorch and ONNX Runtime, from photo to mask.

A photo is looked at twice. The first look sees the whole photo and finds the digit window roughly; the second
zooms in on a square around the largest window found and gives its edges at several times the resolution. Both
looks use the same network, trained on whole photos and on zoomed views alike (see wms.augment).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy import ndimage

from wms.geometry import SquareView, photo_box, place_back, render_photo, view_around_box, whole_photo_view
from wms.imaging import bounding_box, normalize, sigmoid


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

    def probabilities_batch(self, photos: list[np.ndarray]) -> list[np.ndarray]:
        """Probability maps (H, W) of a batch of photos: one batch for the first look, one for the zoomed look."""
        if not photos:
            return []
        views = [whole_photo_view(*photo.shape[:2], self.image_size) for photo in photos]
        first = self._look(photos, views)
        if not self.refine:
            return [place_back(p, view, *photo.shape[:2]) for p, view, photo in zip(first, views, photos, strict=True)]
        boxes = [largest_region_box(probabilities > self.threshold) for probabilities in first]
        windows = [
            photo_box(box, view, *photo.shape[:2]) if box else None for box, view, photo in zip(boxes, views, photos, strict=True)
        ]
        found = [index for index, window in enumerate(windows) if window is not None]
        zoom_views = {index: view_around_box(windows[index], self.image_size) for index in found}
        zoomed = dict(zip(found, self._look([photos[i] for i in found], [zoom_views[i] for i in found]), strict=True))
        return [
            place_back(zoomed[i], zoom_views[i], *photo.shape[:2])
            if i in zoomed
            else place_back(first[i], views[i], *photo.shape[:2])
            for i, photo in enumerate(photos)
        ]

    def probabilities(self, photo: np.ndarray) -> np.ndarray:
        return self.probabilities_batch([photo])[0]

    def mask(self, photo: np.ndarray) -> np.ndarray:
        return self.probabilities(photo) > self.threshold

    def _look(self, photos: list[np.ndarray], views: list[SquareView]) -> list[np.ndarray]:
        """Window probabilities (size, size) of each view, in model pixels."""
        if not photos:
            return []
        logits = self.backend(normalize(np.stack([render_photo(photo, view) for photo, view in zip(photos, views, strict=True)])))
        return [sigmoid(logit[0]) for logit in logits]


def largest_region_box(mask: np.ndarray) -> list[int] | None:
    """The bounding box [x_min, y_min, x_max, y_max] of the largest connected region of a mask, or None."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return None
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    return bounding_box(labels == int(np.argmax(sizes)) + 1)


class TorchBackend:
    def __init__(self, module) -> None:
        import torch

        self._torch = torch
        self._module = module.eval()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        device = next(self._module.parameters()).device
        with self._torch.inference_mode():
            return self._module(self._torch.from_numpy(batch).to(device)).float().cpu().numpy()


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
    """A Segmenter for an ONNX file exported by wms.export (its input size is in its metadata)."""
    backend = OnnxBackend(model_path)
    return Segmenter(backend=backend, image_size=int(backend.metadata()["wms.image_size"]))
