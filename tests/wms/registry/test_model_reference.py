"""A model reference resolved once: `wms predict`, `wms serve start` and the release pack the same ONNX file."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.models import centre_window_onnx
from wms.core.local_state import MODEL_NAME, StateLayout
from wms.inference.imaging import read_photo
from wms.inference.predict import onnx_segmenter
from wms.registry.model_reference import onnx_of_version, resolve_model
from wms.registry.model_registry import ONNX_URI_TAG, ModelRegistry
from wms.serving.local_serving import resolve_local_model
from wms_cli.main import main


@pytest.fixture
def champion(tmp_path, monkeypatch):
    """A local state whose registry holds version 1, champion, trained and exported as the platform does."""
    monkeypatch.setenv("WMS_HOME", str(tmp_path / "state"))
    layout = StateLayout(tmp_path / "state")
    layout.create()
    registry = ModelRegistry(layout.mlflow_tracking_uri, MODEL_NAME, artifact_location=layout.mlflow_artifacts.as_uri())
    onnx = centre_window_onnx(tmp_path / "model.onnx")
    with registry.training_run({"image_size": 64}, {}) as run:
        run.set_tags({ONNX_URI_TAG: run.log_file(onnx, "onnx")})
    registry.promote(registry.register(f"runs:/{run.run_id}/onnx", run.run_id, {}))
    return layout, registry


def test_every_use_of_the_champion_runs_its_exported_onnx_file(champion, synthetic_root, tmp_path):
    layout, registry = champion
    served = resolve_local_model("champion", layout)
    released = onnx_of_version(registry, "1", layout.serving / "models")
    assert served.onnx_path == released.onnx_path and served.version == released.version == "1"
    assert served.source.startswith("models:/wms-unet@champion (run ")
    assert resolve_model("models:/wms-unet/1", registry, layout.serving / "models").onnx_path == released.onnx_path

    photos = tmp_path / "photos"
    photos.mkdir()
    photo = sorted((synthetic_root / "images").iterdir())[0]
    (photos / photo.name).write_bytes(photo.read_bytes())
    result = CliRunner().invoke(main, ["predict", "--model", "champion", "--input", str(photos), "--output", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    written = np.asarray(Image.open(tmp_path / "m" / f"{photo.stem}.png")) > 127
    assert np.array_equal(written, onnx_segmenter(released.onnx_path).mask(read_photo(photo)))


def test_a_reference_that_leads_nowhere_says_what_to_give(champion, tmp_path):
    _, registry = champion
    for reference in (str(tmp_path / "missing.onnx"), "latest"):
        with pytest.raises(LookupError, match="give 'champion', an MLflow URI"):
            resolve_model(reference, registry, tmp_path / "models")
    with pytest.raises(LookupError):
        resolve_model("models:/wms-unet@nobody", registry, tmp_path / "models")
