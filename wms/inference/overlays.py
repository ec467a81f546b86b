"""Pictures a person looks at: predicted masks over a few photos."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

TILE = 256
WORST_CASES_SHEET = "worst_test_cases.png"
"""The run artifact that shows the test photos the model did worst on, captioned with their IoU."""
PREDICTED = (0, 255, 0)
"""The model's window: tinted over the photo, outlined."""
TRUTH = (255, 0, 0)
"""The true window: a box around the mask's pixels."""


def answer_overlay(photo: np.ndarray, mask: np.ndarray, polygon: list[list[int]]) -> Image.Image:
    """The photo, full size, with the window the model found tinted and outlined (`wms predict --overlay`)."""
    image = _tinted(photo, mask)
    if len(polygon) > 2:
        width = max(2, round(max(image.size) / 250))
        ImageDraw.Draw(image).polygon([tuple(point) for point in polygon], outline=PREDICTED, width=width)
    return image


def overlay(photo: np.ndarray, predicted: np.ndarray, truth: np.ndarray | None = None) -> Image.Image:
    """The photo with the predicted window tinted green and the true window outlined in red, as a tile."""
    image = _tinted(photo, predicted)
    if truth is not None and truth.any():
        rows, cols = np.nonzero(truth)
        ImageDraw.Draw(image).rectangle([cols.min(), rows.min(), cols.max(), rows.max()], outline=TRUTH, width=3)
    image.thumbnail((TILE, TILE))
    return image


def _tinted(photo: np.ndarray, mask: np.ndarray) -> Image.Image:
    tinted = photo.astype(np.float32)
    tinted[mask] = tinted[mask] * 0.45 + np.array(PREDICTED) * 0.55
    return Image.fromarray(tinted.astype(np.uint8))


def prediction_sheet(segmenter, pairs, limit: int = 8, captions: list[str] | None = None, columns: int = 4) -> Image.Image:
    """Overlays of the predicted window (green) and the true one (red box) for the first `limit` pairs, under a legend;
    each tile captioned with its photo's name, or with `captions`."""
    from wms.inference.imaging import read_mask, read_photo

    tiles = []
    for index, pair in enumerate(pairs[:limit]):
        photo = read_photo(pair.image)
        tile = overlay(photo, segmenter.mask(photo), read_mask(pair.mask))
        tiles.append(_captioned(tile, captions[index] if captions else pair.name))
    return _with_legend(contact_sheet(tiles, columns))


def worst_cases_sheet(segmenter, pairs, ious: list[float], limit: int = 8) -> Image.Image:
    """Overlays of the `limit` photos with the lowest IoU, worst first, each with its IoU: where the model fails.

    Two tiles wide: the Dagster UI draws it at its own size in a metadata cell about 600 pixels wide."""
    worst = sorted(range(len(pairs)), key=lambda index: ious[index])[:limit]
    captions = [f"IoU {ious[index]:.2f}  {pairs[index].name}" for index in worst]
    return prediction_sheet(segmenter, [pairs[index] for index in worst], limit, captions, columns=2)


def _captioned(tile: Image.Image, text: str) -> Image.Image:
    """The tile with `text` on a dark band along its bottom edge."""
    draw = ImageDraw.Draw(tile)
    draw.rectangle([0, tile.height - 16, tile.width, tile.height], fill=(0, 0, 0))
    draw.text((4, tile.height - 14), text[:40], fill=(255, 255, 255))
    return tile


def _with_legend(sheet: Image.Image) -> Image.Image:
    """The sheet under a band that says what the colours mean."""
    framed = Image.new("RGB", (sheet.width, sheet.height + 22), (255, 255, 255))
    framed.paste(sheet, (0, 22))
    draw = ImageDraw.Draw(framed)
    draw.rectangle([6, 6, 16, 16], fill=PREDICTED)
    draw.text((22, 5), "the model's window", fill=(0, 0, 0))
    draw.rectangle([180, 6, 190, 16], outline=TRUTH, width=2)
    draw.text((196, 5), "the true window (box)", fill=(0, 0, 0))
    return framed


def contact_sheet(tiles: list[Image.Image], columns: int = 4) -> Image.Image:
    """Lay tiles out in a grid, left to right, top to bottom."""
    rows = max(1, -(-len(tiles) // columns))
    sheet = Image.new("RGB", (columns * TILE, rows * TILE), (255, 255, 255))
    for index, tile in enumerate(tiles):
        sheet.paste(tile, ((index % columns) * TILE, (index // columns) * TILE))
    return sheet
