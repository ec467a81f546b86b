"""Image and mask handling shared by training, batch prediction and the TorchServe handler.

Only numpy and Pillow are used here, so the serving image can import this module without torch.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

MASK_THRESHOLD = 127
"""Masks are JPEG files: their values drift around 0 and 255, so they are thresholded here."""

PIXEL_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
PIXEL_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

EXIF_ORIENTATION_TAG = 0x0112
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class UnreadableImageError(ValueError):
    """Raised when bytes or a file cannot be decoded as an image."""


def open_image(source: str | Path | bytes) -> Image.Image:
    """Open an image from a path or bytes and turn it by its EXIF orientation."""
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(f"cannot decode image: {error}") from error
    return ImageOps.exif_transpose(image)


def read_photo(source: str | Path | bytes) -> np.ndarray:
    """Return a photo as an RGB uint8 array of shape (H, W, 3), as it is displayed."""
    return np.asarray(open_image(source).convert("RGB"))


def read_mask(source: str | Path | bytes) -> np.ndarray:
    """Return a mask as a bool array (H, W): True inside the digit window."""
    return np.asarray(open_image(source).convert("L")) > MASK_THRESHOLD


def normalize(images: np.ndarray) -> np.ndarray:
    """Turn uint8 images (N, H, W, 3) into the float32 NCHW tensor the model takes."""
    scaled = images.astype(np.float32) / 255.0
    return np.ascontiguousarray(((scaled - PIXEL_MEAN) / PIXEL_STD).transpose(0, 3, 1, 2))


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))


def mask_to_png(mask: np.ndarray) -> bytes:
    """Encode a bool mask as a grayscale PNG with the values 0 and 255."""
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def bounding_box(mask: np.ndarray) -> list[int] | None:
    """[x_min, y_min, x_max, y_max] of the True pixels, or None for an empty mask."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    return [int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())]
