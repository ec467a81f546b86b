"""What the service accepts as a photo: checks made before decoding, and any valid photo turned into RGB.

A request body is untrusted. Its format is checked from the header (only JPEG, PNG, WebP and BMP decoders are ever
tried), its pixel count before a single pixel is decoded (decompression bombs), and its size after (a 1x1 image
holds no meter). Unusual but valid photos (alpha, grayscale, CMYK, 16-bit, palette) become plain RGB. A JPEG is
decoded at a reduced scale (DCT scaling) when the model would not use the full resolution anyway.
Only numpy and Pillow are used here, so the serving image can import this module without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from wms.inference.imaging import MAX_PHOTO_PIXELS, open_header, shrink, without_alpha

FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
"""Pillow's names of the accepted formats (its JPEG plugin also opens MPO, the multi-picture JPEG of many phones)."""
REDUCIBLE_FORMATS = ("JPEG", "MPO")
"""Formats that decode at a reduced scale (DCT scaling); the others are decoded whole before anything else."""

Image.init()  # registers every plugin before `formats` restricts them

EXIF_TURNS_SIDEWAYS = {5, 6, 7, 8}
"""EXIF orientations that swap width and height."""


INTERNAL_ERROR = "the model failed on this photo (the server's fault, logged with its cause): try again, or report it"
"""What a client is told when the model failed on its photo (500, cause `internal_error`): the handler and the front
door both answer it."""


class PhotoRejected(ValueError):
    """A body that is not a photo the service can read; `cause` names the problem for metrics, `status` is the HTTP code."""

    def __init__(self, cause: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.cause, self.status = cause, status


@dataclass(frozen=True)
class PhotoLimits:
    max_pixels: int = MAX_PHOTO_PIXELS
    max_whole_pixels: int = 16_000_000
    """Largest PNG, WebP or BMP: those decode whole (a 6 KB 1-bit PNG of 50 megapixels cost a worker 645 MB and
    3 s), while a JPEG of up to `max_pixels` decodes at the scale the model reads."""
    min_side: int = 32
    """Smallest width or height: below it there is no meter to find."""


@dataclass(frozen=True)
class DecodedPhoto:
    pixels: np.ndarray
    """RGB uint8 (H, W, 3), turned upright, at most `wanted_side` long when one was given."""
    width: int
    height: int
    """The turned photo's own size, which the answer's mask takes."""
    format: str


def decode_photo(body: bytes, limits: PhotoLimits = PhotoLimits(), wanted_side: int | None = None) -> DecodedPhoto:
    """Decode an uploaded photo; a JPEG is decoded only as finely as `wanted_side` (its long side) needs.

    Raises PhotoRejected with a message that says what was wrong and what to send instead.
    """
    if not body:
        raise PhotoRejected("empty_body", "the request has no body: send the photo's bytes (JPEG, PNG, WebP or BMP)")
    image = _open(body)
    width, height = image.size
    if width * height > limits.max_pixels:
        raise PhotoRejected(
            "too_many_pixels",
            f"the photo is {width}x{height} ({width * height / 1e6:.0f} megapixels); the limit is "
            f"{limits.max_pixels / 1e6:.0f} megapixels: send a smaller photo",
            status=413,
        )
    if image.format not in REDUCIBLE_FORMATS and width * height > limits.max_whole_pixels:
        raise PhotoRejected(
            "too_many_pixels",
            f"the photo is a {image.format} of {width}x{height} ({width * height / 1e6:.0f} megapixels), which is decoded "
            f"whole; the limit for PNG, WebP and BMP is {limits.max_whole_pixels / 1e6:.0f} megapixels: send it as a "
            f"JPEG (up to {limits.max_pixels / 1e6:.0f} megapixels) or smaller",
            status=413,
        )
    if min(width, height) < limits.min_side:
        raise PhotoRejected(
            "too_small", f"the photo is {width}x{height}: send one at least {limits.min_side} pixels on each side"
        )
    try:
        return _decode(image, wanted_side)
    except (PhotoRejected, MemoryError):
        raise
    except Exception as error:  # Pillow fails in many ways on damaged data, and the body is untrusted
        raise PhotoRejected(
            "undecodable", f"the image data cannot be decoded ({error}): the file may be damaged or cut short; send it whole"
        ) from error


def _decode(image: Image.Image, wanted_side: int | None) -> DecodedPhoto:
    width, height = image.size
    sideways = image.getexif().get(0x0112) in EXIF_TURNS_SIDEWAYS
    if wanted_side and image.format in REDUCIBLE_FORMATS and max(width, height) > wanted_side:
        scale = wanted_side / max(width, height)  # the smallest DCT scale whose long side is still >= wanted_side
        image.draft(image.mode, (int(np.ceil(width * scale)), int(np.ceil(height * scale))))
    image.load()
    pixels = _to_rgb(ImageOps.exif_transpose(image))
    if wanted_side:  # what the model reads (wms.inference.predict shrinks so too); a batch then holds no full-size photo
        pixels = shrink(pixels, wanted_side)
    return DecodedPhoto(
        pixels=pixels, width=height if sideways else width, height=width if sideways else height, format=image.format
    )


def _open(body: bytes) -> Image.Image:
    try:
        return open_header(body, FORMATS)
    except Image.UnidentifiedImageError as error:
        raise PhotoRejected(
            "not_an_image", "the body is not a valid JPEG, PNG, WebP or BMP image: send the photo file's own bytes"
        ) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise PhotoRejected(
            "too_many_pixels", f"the photo is too large to decode ({error}): send a smaller photo", status=413
        ) from error
    except Exception as error:  # damaged headers fail in many ways
        raise PhotoRejected("undecodable", f"the image header cannot be read ({error}): send a complete photo") from error


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode as RGB uint8: alpha dropped (`without_alpha`), 16-bit and float scaled to 8 bits."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(image).astype(np.float64)
        scale = 257.0 if wide.max() > 255 else 1.0  # 16-bit samples (0..65535) or 8-bit values held in 32-bit ints
        image = Image.fromarray(np.clip(wide / scale, 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), mode="L")
    image = without_alpha(image)
    try:
        return np.asarray(image.convert("RGB"))
    except ValueError as error:
        raise PhotoRejected(
            "unsupported_colour", f"the image's colour mode {image.mode} cannot be shown as RGB: send an RGB photo", status=415
        ) from error
