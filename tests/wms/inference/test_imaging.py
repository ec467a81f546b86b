import io

import numpy as np
import pytest
from PIL import Image

from wms.inference.imaging import (
    EXIF_ORIENTATION_TAG,
    UnreadableImageError,
    bounding_box,
    mask_to_png,
    read_mask,
    read_photo,
)


def jpeg_bytes(array: np.ndarray, orientation: int | None = None) -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[EXIF_ORIENTATION_TAG] = orientation
    Image.fromarray(array).save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    return buffer.getvalue()


def test_read_photo_turns_by_exif_orientation():
    stored = np.zeros((20, 40, 3), dtype=np.uint8)  # wide as stored
    photo = read_photo(jpeg_bytes(stored, orientation=6))
    assert photo.shape == (40, 20, 3)  # tall as displayed


def test_read_mask_thresholds_jpeg_noise_at_127():
    values = np.array([[0, 1, 126, 128, 254, 255]], dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(values, mode="L").save(buffer, format="PNG")
    assert read_mask(buffer.getvalue()).tolist() == [[False, False, False, True, True, True]]


def test_unreadable_bytes_raise_a_clear_error():
    with pytest.raises(UnreadableImageError, match="not an image format Pillow can read"):
        read_photo(b"definitely not an image")


def test_mask_png_holds_only_0_and_255():
    mask = np.zeros((5, 6), dtype=bool)
    mask[1:3, 2:4] = True
    values = np.asarray(Image.open(io.BytesIO(mask_to_png(mask))))
    assert set(np.unique(values)) == {0, 255}
    assert values.shape == (5, 6)


def test_bounding_box():
    mask = np.zeros((10, 10), dtype=bool)
    assert bounding_box(mask) is None
    mask[2:5, 3:8] = True
    assert bounding_box(mask) == [3, 2, 7, 4]
