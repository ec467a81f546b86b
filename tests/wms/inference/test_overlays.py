from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from wms.inference.overlays import PREDICTED, TILE, TRUTH, worst_cases_sheet

COLOURS = [(200, 40, 40), (40, 40, 200), (200, 200, 40)]
LEGEND = 22


@dataclass
class Pair:
    image: Path
    mask: Path
    name: str


class NoWindow:
    """A segmenter that finds nothing: each tile shows its photo untinted."""

    def mask(self, photo: np.ndarray) -> np.ndarray:
        return np.zeros(photo.shape[:2], bool)


def solid_pairs(folder: Path) -> list[Pair]:
    pairs = []
    for index, colour in enumerate(COLOURS):
        image, mask = folder / f"photo_{index}.png", folder / f"mask_{index}.png"
        Image.new("RGB", (TILE, TILE), colour).save(image)
        window = np.zeros((TILE, TILE), np.uint8)
        window[100:140, 60:200] = 255
        Image.fromarray(window).save(mask)
        pairs.append(Pair(image, mask, f"photo_{index}.png"))
    return pairs


def test_the_worst_cases_come_first_two_tiles_wide_under_the_legend(tmp_path):
    sheet = worst_cases_sheet(NoWindow(), solid_pairs(tmp_path), ious=[0.9, 0.1, 0.5], limit=2)
    assert sheet.size == (2 * TILE, LEGEND + TILE)  # narrow enough for the Dagster UI's metadata cell
    pixels = np.asarray(sheet.convert("RGB"))
    assert tuple(pixels[LEGEND + 20, 20]) == COLOURS[1]  # IoU 0.1 first
    assert tuple(pixels[LEGEND + 20, TILE + 20]) == COLOURS[2]  # then 0.5; 0.9 is left out
    assert tuple(pixels[11, 11]) == PREDICTED
    assert tuple(pixels[LEGEND + 100, 60]) == TRUTH  # the true window's box
