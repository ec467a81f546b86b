"""Image and mask handling shared by training, batch prediction and the TorchServe handler.

Only numpy and Pillow are used here, so the serving image can import this module without torch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Letterbox:
    """How an image of `height` x `width` was scaled into a `size` x `size` square (padded right and bottom)."""

    height: int
    width: int
    size: int

    @property
    def scale(self) -> float:
        return self.size / max(self.height, self.width)

    @property
    def inner_height(self) -> int:
        return max(1, round(self.height * self.scale))

    @property
    def inner_width(self) -> int:
        return max(1, round(self.width * self.scale))


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


def letterbox_image(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Scale an RGB image so its long side is `size`, keeping the aspect ratio, and pad it to a square."""
    box = Letterbox(height=image.shape[0], width=image.shape[1], size=size)
    resized = Image.fromarray(image).resize((box.inner_width, box.inner_height), Image.BILINEAR)
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[: box.inner_height, : box.inner_width] = np.asarray(resized)
    return canvas, box


def letterbox_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Scale and pad a bool mask exactly as `letterbox_image` does with its photo."""
    box = Letterbox(height=mask.shape[0], width=mask.shape[1], size=size)
    resized = Image.fromarray(mask.astype(np.uint8) * 255).resize((box.inner_width, box.inner_height), Image.NEAREST)
    canvas = np.zeros((size, size), dtype=bool)
    canvas[: box.inner_height, : box.inner_width] = np.asarray(resized) > MASK_THRESHOLD
    return canvas


def normalize(images: np.ndarray) -> np.ndarray:
    """Turn uint8 images (N, H, W, 3) into the float32 NCHW tensor the model takes."""
    scaled = images.astype(np.float32) / 255.0
    return np.ascontiguousarray(((scaled - PIXEL_MEAN) / PIXEL_STD).transpose(0, 3, 1, 2))


def restore_probabilities(probabilities: np.ndarray, box: Letterbox) -> np.ndarray:
    """Undo the letterbox on a (size, size) probability map: crop the padding, scale back to the photo."""
    inner = probabilities[: box.inner_height, : box.inner_width].astype(np.float32)
    return np.asarray(Image.fromarray(inner, mode="F").resize((box.width, box.height), Image.BILINEAR))


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
