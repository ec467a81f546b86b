"""The benchmark's baseline: TorchServe's own eager-PyTorch path (BaseHandler) serving the same U-Net weights.

TorchServe's BaseHandler loads the eager model from the archive's model file and state dict, picks the device
and runs `inference` under torch.inference_mode, as a TorchServe user gets by default. Around it, the same steps
as the WMS handler (decode, both looks, the same JSON answer), so that both servers give the same masks and
only the serving stack differs. Photos are decoded with Pillow in full, as TorchServe's vision handlers do.
"""

import base64

import numpy as np
import torch
from ts.torch_handler.base_handler import BaseHandler

from wms.inference.imaging import bounding_box, mask_to_png, read_photo
from wms.inference.predict import Segmenter, window_confidence, window_polygon


class EagerWindowHandler(BaseHandler):
    def initialize(self, context):
        super().initialize(context)
        image_size = int(context.model_yaml_config["handler"]["image_size"])
        self.segmenter = Segmenter(backend=self._run_model, image_size=image_size)
        self.version = self.manifest["model"].get("modelVersion", "")

    def _run_model(self, batch: np.ndarray) -> np.ndarray:
        return super().inference(torch.from_numpy(batch)).float().cpu().numpy()

    def preprocess(self, data):
        return [read_photo(bytes(row.get("data") or row.get("body"))) for row in data]

    def inference(self, data, *args, **kwargs):
        return self.segmenter.masks_batch(data)

    def postprocess(self, data):
        answers = []
        for probabilities, mask in data:
            confidence = window_confidence(probabilities, mask)
            answers.append(
                {
                    "mask_png_base64": base64.b64encode(mask_to_png(mask)).decode("ascii"),
                    "polygon": window_polygon(mask),
                    "bbox": bounding_box(mask),
                    "width": int(mask.shape[1]),
                    "height": int(mask.shape[0]),
                    "window_fraction": round(float(mask.mean()), 6),
                    "confidence": round(confidence, 4),
                    "model_version": self.version,
                }
            )
        return answers
