"""Pictures a person looks at: predicted masks over a few photos."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, ImageDraw

TILE = 256


def overlay(photo: np.ndarray, predicted: np.ndarray, truth: np.ndarray | None = None) -> Image.Image:
    """The photo with the predicted window tinted green and the true window outlined in red."""
    tinted = photo.astype(np.float32)
    tinted[predicted] = tinted[predicted] * 0.45 + np.array([0, 255, 0]) * 0.55
    image = Image.fromarray(tinted.astype(np.uint8))
    if truth is not None and truth.any():
        rows, cols = np.nonzero(truth)
        ImageDraw.Draw(image).rectangle([cols.min(), rows.min(), cols.max(), rows.max()], outline=(255, 0, 0), width=3)
    image.thumbnail((TILE, TILE))
    return image


def prediction_sheet(segmenter, pairs, limit: int = 8) -> Image.Image:
    """Overlays of the predicted window (green) and the true one (red box) for the first `limit` pairs."""
    from wms.imaging import read_mask, read_photo

    tiles = []
    for pair in pairs[:limit]:
        photo = read_photo(pair.image)
        tiles.append(overlay(photo, segmenter.mask(photo), read_mask(pair.mask)))
    return contact_sheet(tiles)


def worst_cases_sheet(segmenter, pairs, ious: list[float], limit: int = 8) -> Image.Image:
    """Overlays of the `limit` photos with the lowest IoU, worst first: where the model fails, at a glance."""
    worst = sorted(range(len(pairs)), key=lambda index: ious[index])[:limit]
    return prediction_sheet(segmenter, [pairs[index] for index in worst], limit)


def markdown_image(image: Image.Image, caption: str, max_side: int = 640) -> str:
    """Markdown that embeds a (shrunk) PNG, for Dagster metadata that the UI shows inline."""
    small = image.copy()
    small.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    return f"![{caption}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode('ascii')})"


def contact_sheet(tiles: list[Image.Image], columns: int = 4) -> Image.Image:
    """Lay tiles out in a grid, left to right, top to bottom."""
    rows = max(1, -(-len(tiles) // columns))
    sheet = Image.new("RGB", (columns * TILE, rows * TILE), (255, 255, 255))
    for index, tile in enumerate(tiles):
        sheet.paste(tile, ((index % columns) * TILE, (index // columns) * TILE))
    return sheet
