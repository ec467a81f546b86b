import numpy as np
import onnx
import pytest

from wms.inference.imaging import read_photo
from wms.inference.predict import Segmenter, onnx_segmenter
from wms.training.export import export_onnx, max_probability_gap
from wms.training.model import TorchBackend, build_unet


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = build_unet("mobilenet_v2").eval()
    path = export_onnx(model, 64, tmp_path_factory.mktemp("onnx") / "model.onnx", {"wms.model_version": "7"})
    return model, path


def test_export_records_size_and_metadata(exported):
    _, path = exported
    props = {entry.key: entry.value for entry in onnx.load(str(path)).metadata_props}
    assert props == {"wms.model_version": "7", "wms.image_size": "64"}


def test_onnx_runtime_agrees_with_pytorch(exported, synthetic_root):
    model, path = exported
    photos = [read_photo(p) for p in sorted((synthetic_root / "images").iterdir())[:3]]
    assert max_probability_gap(model, path, photos, 64) < 1e-4


def test_onnx_segmenter_gives_masks_the_size_of_the_photo(exported, synthetic_root):
    model, path = exported
    photo = read_photo(sorted((synthetic_root / "images").iterdir())[0])
    onnx_mask = onnx_segmenter(path).mask(photo)
    torch_mask = Segmenter(TorchBackend(model), 64).mask(photo)
    assert onnx_mask.shape == photo.shape[:2]
    assert np.mean(onnx_mask == torch_mask) > 0.999
