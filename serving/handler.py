"""TorchServe handler: photo in, mask of the digit window out, with ONNX Runtime doing the inference.

TorchServe calls the module-level `handle(data, context)`: once with data=None to load the model, then with
each batch of requests. Every item of a batch succeeds or fails on its own.
"""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import numpy as np

from wms.imaging import UnreadableImageError, bounding_box, mask_to_png, read_photo
from wms.predict import Segmenter

logger = logging.getLogger(__name__)


def cpu_quota() -> int:
    """CPUs this process may use (its affinity mask, which a container's cpuset sets), not the host's count."""
    return max(1, len(os.sched_getaffinity(0)))


class WindowSegmenter:
    """Loads the ONNX model of a model archive and answers batches of photos."""

    def __init__(self) -> None:
        self.session = None
        self.segmenter: Segmenter | None = None
        self.model_name = ""
        self.model_version = ""

    def initialize(self, context) -> None:
        import onnxruntime

        model_dir = Path(context.system_properties["model_dir"])
        manifest = context.manifest["model"]
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cpu_quota()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in onnxruntime.get_available_providers()]
        self.session = onnxruntime.InferenceSession(str(model_dir / manifest["serializedFile"]), options, providers=providers)
        image_size = int(self.session.get_modelmeta().custom_metadata_map["wms.image_size"])
        self.segmenter = Segmenter(backend=self._run_model, image_size=image_size)
        self.model_name, self.model_version = manifest["modelName"], manifest.get("modelVersion", "")
        logger.info("loaded %s version %s with %s", self.model_name, self.model_version, self.session.get_providers())

    def handle(self, requests: list[dict], context) -> list[dict]:
        photos, errors = self.preprocess(requests)
        good = [index for index in range(len(requests)) if index not in errors]
        answers = self.inference([photos[index] for index in good])
        responses = []
        for index in range(len(requests)):
            if index in errors:
                context.set_response_status(400, errors[index], idx=index)
                responses.append({"error": errors[index], "model": self.model_name, "model_version": self.model_version})
            else:
                photo_index = good.index(index)
                responses.append(self.postprocess(*answers[photo_index]))
        return responses

    def preprocess(self, requests: list[dict]) -> tuple[dict[int, np.ndarray], dict[int, str]]:
        photos, errors = {}, {}
        for index, request in enumerate(requests):
            body = request.get("data") or request.get("body")
            if not body:
                errors[index] = "the request has no body: send the photo's bytes (JPEG, PNG, WebP or BMP)"
                continue
            try:
                photos[index] = read_photo(bytes(body))
            except UnreadableImageError as error:
                errors[index] = f"the body is not a readable image ({error}): send a JPEG, PNG, WebP or BMP photo"
        return photos, errors

    def _run_model(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.session.get_inputs()[0].name: batch})[0]

    def inference(self, photos: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(probabilities, mask) of each photo: a look at the whole batch, then one at each window found (wms.predict)."""
        return self.segmenter.masks_batch(photos)

    def postprocess(self, probabilities: np.ndarray, mask: np.ndarray) -> dict:
        confidence = float(probabilities[mask].mean()) if mask.any() else float(1.0 - probabilities.max())
        return {
            "mask_png_base64": base64.b64encode(mask_to_png(mask)).decode("ascii"),
            "bbox": bounding_box(mask),
            "width": int(mask.shape[1]),
            "height": int(mask.shape[0]),
            "window_fraction": float(mask.mean()),
            "confidence": round(confidence, 4),
            "model": self.model_name,
            "model_version": self.model_version,
        }


_service = WindowSegmenter()


def handle(data, context):
    if data is None:
        _service.initialize(context)
        return None
    return _service.handle(data, context)
