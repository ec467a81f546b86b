import shutil

import numpy as np
import pytest
from PIL import Image

from wms.data.annotations import AnnotationError, parse_location, rasterize, read_annotations
from wms.data.pairs import mirror_pairs
from wms.data.validation import validate_folder
from wms.inference.imaging import read_mask, read_photo
from wms.inference.scores import iou

SQUARE = (
    "{'type': 'polygon', 'data': [{'x': 0.25, 'y': 0.25}, {'x': 0.75, 'y': 0.25}, "
    "{'x': 0.75, 'y': 0.75}, {'x': 0.25, 'y': 0.75}]}"
)


def polygon_literal(mask: np.ndarray) -> str:
    """The bounding box of a mask as a location literal, as data.csv writes it."""
    rows, cols = np.nonzero(mask)
    height, width = mask.shape
    x0, x1, y0, y1 = cols.min() / width, (cols.max() + 1) / width, rows.min() / height, (rows.max() + 1) / height
    points = ", ".join(f"{{'x': {x:.4f}, 'y': {y:.4f}}}" for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))
    return f"{{'type': 'polygon', 'data': [{points}]}}"


def test_parse_location_reads_a_python_literal_not_json():
    assert parse_location(SQUARE) == ((0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75))
    assert parse_location("") is None


@pytest.mark.parametrize("bad", ["{'type': 'point'}", "not python", "{'type': 'polygon', 'data': [{'x': 3, 'y': 3}] * 3}"])
def test_bad_locations_are_refused(bad):
    with pytest.raises(AnnotationError):
        parse_location(bad)


def test_rasterize_fills_the_polygon():
    mask = rasterize(parse_location(SQUARE), (40, 20))
    assert mask.shape == (20, 40)
    assert mask[10, 20] and not mask[0, 0]
    assert 0.2 < mask.mean() < 0.3


@pytest.fixture
def annotated(synthetic_root, tmp_path):
    """A copy with data.csv; the first photo loses its mask file, the second gets a polygon elsewhere."""
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    names = sorted(p.name for p in (root / "images").iterdir())[:4]
    rows = ["photo_name,value,location"]
    for name in names:
        box = np.zeros_like(read_mask(root / "masks" / name))
        rows_, cols_ = np.nonzero(read_mask(root / "masks" / name))
        box[rows_.min() : rows_.max() + 1, cols_.min() : cols_.max() + 1] = True
        Image.fromarray(box.astype(np.uint8) * 255).save(root / "masks" / name, format="JPEG", quality=95)
        rows.append(f'images/{name},1.0,"{polygon_literal(box)}"')
    rows[2] = f'images/{names[1]},2.0,"{SQUARE}"'
    rows.append("images/broken.jpg,3.0,\"{'type': 'nonsense'}\"")
    (root / "data.csv").write_text("\n".join(rows) + "\n")
    truth = read_mask(root / "masks" / names[0])
    (root / "masks" / names[0]).unlink()
    return root, names, truth


def test_read_annotations_reports_unreadable_rows(annotated):
    root, names, _ = annotated
    annotations, problems = read_annotations(root / "data.csv")
    assert set(annotations) == set(names)
    assert problems[0]["file"] == "data.csv line 6"


def test_a_missing_mask_is_rasterized_from_its_polygon_and_disagreements_are_reported(annotated, tmp_path):
    root, names, truth = annotated
    report = validate_folder(root, workers=1)
    assert names[0] in {pair.name for pair in report.valid}
    assert [entry["file"] for entry in report.polygon_disagreements] == [f"images/{names[1]}"]
    assert any(entry["file"] == "data.csv line 6" for entry in report.rejected)
    mirror_pairs(report.valid, tmp_path / "mirror")
    rasterized = read_mask(tmp_path / "mirror" / "masks" / names[0])
    assert rasterized.shape == read_photo(root / "images" / names[0]).shape[:2]
    assert iou(rasterized, truth) > 0.8
