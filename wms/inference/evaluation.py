"""Scoring a model on labelled photos the way the service answers them, photo by photo.

The service decodes an uploaded JPEG only as finely as the model reads it (wms.inference.uploads) and answers at the
photo's own size; scoring the photo files through that same path is what the gates compare models on, so a version's
recorded test scores are what a client of the service gets (in-process scoring at full resolution was 0.0014 IoU
kinder on the real test split).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wms.inference.imaging import read_mask
from wms.inference.predict import Segmenter
from wms.inference.scores import ScoreAccumulator, SegmentationScores
from wms.inference.uploads import decode_photo

BATCH = 8
"""Photos per model batch: the first looks of a batch run together, as the service batches requests."""


class LabelledPhoto(Protocol):
    """A photo file and the file of its window's mask (wms.data.pairs.Pair is one)."""

    @property
    def name(self) -> str: ...

    image: Path
    mask: Path


@dataclass(frozen=True)
class PhotoScores:
    """Each photo's IoU and Dice, by name in the order scored, and the scores of them all."""

    names: tuple[str, ...]
    ious: tuple[float, ...]
    dices: tuple[float, ...]
    scores: SegmentationScores

    def iou_by_name(self) -> dict[str, float]:
        return dict(zip(self.names, self.ious, strict=True))


def score_as_served(segmenter: Segmenter, photos: Iterable[LabelledPhoto]) -> PhotoScores:
    """Score every photo as the service answers its file: decoded as an upload, both looks, the cleaned mask at the
    photo's own size against its mask file."""
    photos = list(photos)
    accumulator, names = ScoreAccumulator.empty(), []
    for start in range(0, len(photos), BATCH):
        chunk = photos[start : start + BATCH]
        decoded = [decode_photo(photo.image.read_bytes(), wanted_side=segmenter.longest_side) for photo in chunk]
        looks = segmenter.looks_batch([d.pixels for d in decoded], sizes=[(d.height, d.width) for d in decoded])
        for photo, look in zip(chunk, looks, strict=True):
            mask, _ = segmenter.answer(look)
            accumulator.add(mask, read_mask(photo.mask))
            names.append(photo.name)
    return PhotoScores(tuple(names), tuple(accumulator.ious), tuple(accumulator.dices), accumulator.scores())
