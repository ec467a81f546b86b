"""Exporting a trained model to ONNX and checking that ONNX Runtime agrees with PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from wms.core.files import written_atomically
from wms.inference.geometry import render_photo, whole_photo_view
from wms.inference.imaging import normalize, sigmoid
from wms.inference.predict import OnnxBackend
from wms.training.model import TorchBackend

INPUT_NAME, OUTPUT_NAME = "image", "logits"


def export_onnx(model: torch.nn.Module, image_size: int, path: Path, metadata: dict[str, str]) -> Path:
    """Write the model as ONNX with a dynamic batch axis; `metadata` lands in the file's metadata_props."""
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, 3, image_size, image_size)
    with written_atomically(path) as partial:
        torch.onnx.export(
            model.eval(),
            (example,),
            str(partial),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=64)}},
            dynamo=True,
            external_data=False,
        )
        exported = onnx.load(str(partial))
        for key, value in {**metadata, "wms.image_size": str(image_size)}.items():
            exported.metadata_props.append(onnx.StringStringEntryProto(key=key, value=str(value)))
        onnx.save(exported, str(partial))
    return path


def max_probability_gap(model: torch.nn.Module, onnx_path: Path, photos: list[np.ndarray], image_size: int) -> float:
    """The largest difference between PyTorch's and ONNX Runtime's window probability over these photos."""
    batch = normalize(np.stack([render_photo(photo, whole_photo_view(*photo.shape[:2], image_size)) for photo in photos]))
    eager = sigmoid(TorchBackend(model)(batch))
    exported = sigmoid(OnnxBackend(onnx_path)(batch))
    return float(np.abs(eager - exported).max())
