"""Uploaded photos: what is refused with which cause and status, and how unusual valid photos become RGB."""

import numpy as np
import pytest
from PIL import Image

from tests.photos import encode, mutations, png_header_only
from wms.inference.imaging import read_photo
from wms.inference.uploads import PhotoLimits, PhotoRejected, decode_photo

PHOTO = Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))
JPEG = encode(PHOTO, "JPEG", quality=90)


@pytest.mark.parametrize(
    ("body", "cause", "status"),
    [
        (b"", "empty_body", 400),
        (b"this is not an image", "not_an_image", 400),
        (np.random.default_rng(1).bytes(4096), "not_an_image", 400),
        (JPEG[: len(JPEG) // 2], "undecodable", 400),
        (encode(Image.new("RGB", (1, 1)), "PNG"), "too_small", 400),
        (png_header_only(0, 0), "not_an_image", 400),
        (encode(Image.new("L", (20000, 20000)), "PNG"), "too_many_pixels", 413),
        (png_header_only(9000, 9000), "too_many_pixels", 413),
        (encode(PHOTO, "GIF"), "not_an_image", 400),
        (encode(PHOTO, "TIFF"), "not_an_image", 400),
    ],
    ids=["empty", "text", "random", "truncated", "1x1", "0x0", "bomb", "81-megapixel header", "gif", "tiff"],
)
def test_a_broken_body_is_refused_with_its_cause(body, cause, status):
    with pytest.raises(PhotoRejected) as refused:
        decode_photo(body)
    assert (refused.value.cause, refused.value.status) == (cause, status)
    assert "send" in str(refused.value)  # every message says what to do


@pytest.mark.parametrize(
    ("image", "fmt", "corner"),
    [
        (Image.new("RGBA", (64, 48), (10, 20, 30, 0)), "PNG", (255, 255, 255)),  # fully transparent: no photo, white
        (Image.new("RGBA", (64, 48), (10, 20, 30, 40)), "PNG", (10, 20, 30)),  # semi-transparent: its colours
        (Image.new("LA", (64, 48), (70, 1)), "PNG", (70, 70, 70)),
        (Image.new("L", (64, 48), 128), "PNG", (128, 128, 128)),
        (Image.new("CMYK", (64, 48), (0, 255, 0, 0)), "JPEG", (255, 0, 255)),
        (Image.fromarray(np.full((48, 64), 65535, dtype=np.uint16)), "PNG", (255, 255, 255)),
        (Image.new("RGB", (64, 48), (200, 10, 10)).convert("P"), "PNG", (204, 0, 0)),
        (Image.new("RGB", (64, 48), (1, 2, 3)), "BMP", (1, 2, 3)),
        (Image.new("RGB", (64, 48), (90, 90, 90)), "WEBP", (90, 90, 90)),
    ],
    ids=[
        "png-transparent",
        "png-semi-transparent",
        "png-grey-alpha",
        "grayscale",
        "cmyk-jpeg",
        "png-16-bit",
        "palette",
        "bmp",
        "webp",
    ],
)
def test_unusual_valid_photos_become_rgb(image, fmt, corner):
    decoded = decode_photo(encode(image, fmt))
    assert decoded.pixels.shape == (48, 64, 3) and decoded.pixels.dtype == np.uint8
    assert np.abs(decoded.pixels[0, 0].astype(int) - corner).max() <= 3


def test_a_semi_transparent_photo_is_seen_as_the_opaque_one_and_as_training_reads_it():
    """Composited on white, a photo at 15 % opacity lost its window; the model must see what the camera saw."""
    opaque = np.asarray(PHOTO.convert("RGB"))
    faint = Image.fromarray(np.dstack([opaque, np.full(opaque.shape[:2], 40, dtype=np.uint8)]), mode="RGBA")
    served = decode_photo(encode(faint, "PNG")).pixels
    assert np.array_equal(served, opaque)
    assert np.array_equal(read_photo(encode(faint, "PNG")), served)


def test_a_png_webp_or_bmp_too_large_to_decode_whole_is_refused_a_jpeg_that_size_is_not():
    with pytest.raises(PhotoRejected) as refused:
        decode_photo(png_header_only(5000, 4000))
    assert (refused.value.cause, refused.value.status) == ("too_many_pixels", 413)
    assert "decoded whole" in str(refused.value) and "send it as a JPEG" in str(refused.value)
    decoded = decode_photo(encode(Image.new("RGB", (5000, 4000), (90, 90, 90)), "JPEG"), wanted_side=768)
    assert (decoded.width, decoded.height) == (5000, 4000)


def test_a_photo_is_kept_no_larger_than_the_model_reads_it_and_says_its_own_size():
    decoded = decode_photo(encode(Image.new("RGB", (3000, 2000), (1, 2, 3)), "PNG"), wanted_side=768)
    assert decoded.pixels.shape == (512, 768, 3) and (decoded.width, decoded.height) == (3000, 2000)
    assert decode_photo(encode(PHOTO, "PNG"), wanted_side=768).pixels.shape == (120, 160, 3)


def test_the_exif_orientation_turns_the_photo_and_its_reported_size():
    exif = Image.Exif()
    exif[0x0112] = 6  # turned 90 degrees clockwise
    decoded = decode_photo(encode(PHOTO, "JPEG", exif=exif.tobytes()))
    assert (decoded.width, decoded.height) == (120, 160)
    assert decoded.pixels.shape == (160, 120, 3)


def test_a_large_jpeg_is_decoded_only_as_finely_as_the_model_needs():
    large = encode(Image.new("RGB", (4000, 3000), (50, 60, 70)), "JPEG")
    decoded = decode_photo(large, wanted_side=768)
    assert (decoded.width, decoded.height) == (4000, 3000)  # the answer keeps the photo's size
    assert decoded.pixels.shape == (576, 768, 3)  # DCT scale 1/4 (1000x750), then shrunk to what the model reads


def test_the_limits_are_settings():
    with pytest.raises(PhotoRejected, match="at least 200 pixels on each side"):
        decode_photo(JPEG, PhotoLimits(min_side=200))
    with pytest.raises(PhotoRejected, match="limit is 0 megapixels"):
        decode_photo(JPEG, PhotoLimits(max_pixels=10_000))


def test_damaged_photos_end_as_a_photo_or_a_refusal_never_an_unexpected_error():
    outcomes = set()
    for body in mutations(seed=5, count=400):
        try:
            decode_photo(body, wanted_side=256)
            outcomes.add("decoded")
        except PhotoRejected as refused:
            outcomes.add(refused.cause)
    assert {"decoded", "undecodable", "not_an_image"} <= outcomes
