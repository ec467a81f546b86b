"""Running a trained model on photos: the same steps for PyTorch and ONNX Runtime, from photo to mask."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from wms.imaging import letterbox_image, normalize, restore_probabilities, sigmoid


class Backend(Protocol):
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, 1, S, S) for a normalized float32 batch (N, 3, S, S)."""


@dataclass
class Segmenter:
    """Turns RGB photos of any size into bool masks of the same size."""

    backend: Backend
    image_size: int
    threshold: float = 0.5

    def probabilities(self, photo: np.ndarray) -> np.ndarray:
        square, box = letterbox_image(photo, self.image_size)
        logits = self.backend(normalize(square[None]))
        return restore_probabilities(sigmoid(logits[0, 0]), box)

    def mask(self, photo: np.ndarray) -> np.ndarray:
        return self.probabilities(photo) > self.threshold


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
