"""Image and mask handling shared by training, batch prediction and the TorchServe handler.

Only numpy and Pillow are used here, so the serving image can import this module without torch.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

MASK_THRESHOLD = 127
"""Masks are JPEG files: their values drift around 0 and 255, so they are thresholded here."""

PIXEL_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
PIXEL_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

EXIF_ORIENTATION_TAG = 0x0112
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MAX_PHOTO_PIXELS = 50_000_000
"""Largest width x height ever decoded, by the service or from a data folder: a 48-megapixel phone photo passes, a
small file that unpacks into gigabytes (a decompression bomb) does not."""


class UnreadableImageError(ValueError):
    """Raised when bytes or a file cannot be decoded as an image."""


def open_header(source: str | Path | bytes, formats: tuple[str, ...] | None = None) -> Image.Image:
    """An image opened but not decoded, its size known from the header; Pillow's decompression-bomb warning is
    raised as an error (DecompressionBombWarning), as is its error beyond twice its limit."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=formats)


def open_image(source: str | Path | bytes, max_pixels: int = MAX_PHOTO_PIXELS) -> Image.Image:
    """Open an image from a path or bytes and turn it by its EXIF orientation; its size is checked before decoding."""
    try:
        image = open_header(source)
        if image.width * image.height > max_pixels:
            raise UnreadableImageError(
                f"the image is {image.width}x{image.height} ({image.width * image.height / 1e6:.0f} megapixels), over "
                f"the {max_pixels / 1e6:.0f}-megapixel limit: a photo that large is refused before it is decoded"
            )
        image.load()
    except Image.UnidentifiedImageError as error:
        raise UnreadableImageError("not an image format Pillow can read (JPEG, PNG, WebP, BMP, ...)") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UnreadableImageError(
            f"over the {max_pixels / 1e6:.0f}-megapixel limit, refused before decoding ({error})"
        ) from error
    except (FileNotFoundError, PermissionError, IsADirectoryError) as error:
        raise UnreadableImageError(f"cannot read the file: {error.strerror}") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(f"cannot decode image: {error}") from error
    return ImageOps.exif_transpose(image)


def read_photo(source: str | Path | bytes) -> np.ndarray:
    """Return a photo as an RGB uint8 array of shape (H, W, 3), as it is displayed."""
    return np.asarray(without_alpha(open_image(source)).convert("RGB"))


def without_alpha(image: Image.Image) -> Image.Image:
    """A photo with transparency as RGB: every pixel with any opacity keeps its colour, a fully transparent one
    (no photo there) becomes white. Compositing on white instead washed a semi-transparent photo out until the
    model found no window in it; the colour channels are what the camera saw."""
    if image.mode not in ("RGBA", "RGBa", "LA", "La", "PA") and not (image.mode == "P" and "transparency" in image.info):
        return image
    rgba = np.asarray(image.convert("RGBA"))
    rgb = rgba[..., :3].copy()
    rgb[rgba[..., 3] == 0] = 255
    return Image.fromarray(rgb, mode="RGB")


def read_mask(source: str | Path | bytes) -> np.ndarray:
    """Return a mask as a bool array (H, W): True inside the digit window."""
    return np.asarray(open_image(source).convert("L")) > MASK_THRESHOLD


def shrink(photo: np.ndarray, longest_side: int) -> np.ndarray:
    """The photo with its long side at most `longest_side`, anti-aliased (bilinear)."""
    height, width = photo.shape[:2]
    if max(height, width) <= longest_side:
        return photo
    scale = longest_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(photo).resize(size, Image.BILINEAR))


def normalize(images: np.ndarray) -> np.ndarray:
    """Turn uint8 images (N, H, W, 3) into the float32 NCHW tensor the model takes."""
    scaled = images.astype(np.float32) / 255.0
    return np.ascontiguousarray(((scaled - PIXEL_MEAN) / PIXEL_STD).transpose(0, 3, 1, 2))


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))


MASK_PNG_COMPRESS_LEVEL = 1
"""zlib level of the answer's mask PNG: a 50-megapixel mask took 0.79 s at Pillow's default (6) and takes 0.17 s at
1, for 220 KB instead of 50 KB; a meter photo's mask stays a few kilobytes."""


def mask_to_png(mask: np.ndarray) -> bytes:
    """Encode a bool mask as a grayscale PNG with the values 0 and 255."""
    buffer = io.BytesIO()
    Image.fromarray(mask.view(np.uint8) * np.uint8(255), mode="L").save(
        buffer, format="PNG", compress_level=MASK_PNG_COMPRESS_LEVEL
    )
    return buffer.getvalue()


def bounding_box(mask: np.ndarray) -> list[int] | None:
    """[x_min, y_min, x_max, y_max] of the True pixels, or None for an empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))  # not np.nonzero: 40x faster
    if rows.size == 0:
        return None
    return [int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])]
