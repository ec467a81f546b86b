import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from tests.models import centre_window_onnx
from wms.core.local_state import StateLayout
from wms.inference.predict import onnx_segmenter
from wms.serving.batch import predict_folder, resolve_segmenter
from wms_cli.main import main


@pytest.fixture
def photos(synthetic_root, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in sorted((synthetic_root / "images").iterdir())[:3]:
        shutil.copyfile(path, folder / path.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff truncated")
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_predict_folder_writes_binary_masks_the_size_of_the_turned_photo(untrained_onnx, photos, tmp_path):
    report = predict_folder(onnx_segmenter(untrained_onnx), photos, tmp_path / "out")
    assert len(report.written) == 3
    assert set(report.failures) == {"broken.jpg", "notes.txt"}
    for written in report.written:
        mask = np.asarray(Image.open(written))
        source = Image.open(next(photos.glob(f"{written.stem}.*")))
        from PIL import ImageOps

        assert mask.shape == ImageOps.exif_transpose(source).size[::-1]
        assert set(np.unique(mask)) <= {0, 255}


def test_overlays_show_each_photo_with_its_window_tinted_and_outlined(photos, tmp_path):
    segmenter = onnx_segmenter(centre_window_onnx(tmp_path / "centre.onnx"))
    report = predict_folder(segmenter, photos, tmp_path / "masks", overlay_dir=tmp_path / "overlays")
    for written in report.written:
        mask = np.asarray(Image.open(written)) > 127
        drawn = np.asarray(Image.open(tmp_path / "overlays" / f"{written.stem}.jpg")).astype(int)
        photo = np.asarray(ImageOps.exif_transpose(Image.open(next(photos.glob(f"{written.stem}.*")))).convert("RGB"))
        assert drawn.shape == photo.shape and mask.any()
        greener = drawn[..., 1] - drawn[..., [0, 2]].mean(axis=2) > photo[..., 1] - photo[..., [0, 2]].mean(axis=2) + 30
        assert greener[mask].mean() > 0.9 and greener[~mask].mean() < 0.1
    assert sorted(path.stem for path in (tmp_path / "overlays").iterdir()) == sorted(p.stem for p in report.written)


def test_the_predict_command_writes_overlays_beside_the_masks(photos, tmp_path, monkeypatch):
    monkeypatch.setenv("WMS_HOME", str(tmp_path / "state"))
    model = centre_window_onnx(tmp_path / "centre.onnx")
    arguments = ["predict", "--model", str(model), "--input", str(photos), "--output", str(tmp_path / "m")]
    result = CliRunner().invoke(main, [*arguments, "--overlay", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "o").glob("*.jpg"))) == 3


def test_an_unknown_model_is_a_lookup_error(tmp_path):
    with pytest.raises(LookupError, match="no model at"):
        resolve_segmenter(str(tmp_path / "missing.onnx"), StateLayout(tmp_path))


def test_cli_predict_with_an_onnx_path(untrained_onnx, photos, tmp_path):
    result = CliRunner().invoke(
        main, ["predict", "--model", str(untrained_onnx), "--input", str(photos), "--output", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 3 mask(s)" in result.output
    assert "skipped broken.jpg" in result.output


def test_cli_predict_exits_non_zero_when_the_champion_is_missing(photos, tmp_path, monkeypatch):
    monkeypatch.setenv("WMS_HOME", str(tmp_path / "state"))
    (tmp_path / "state" / "mlflow").mkdir(parents=True)
    result = CliRunner().invoke(main, ["predict", "--model", "champion", "--input", str(photos), "--output", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "cannot load model" in result.output or "no registered model" in result.output
