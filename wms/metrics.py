"""Segmentation metrics on bool masks (numpy), computed per image and over a whole split."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class SegmentationScores:
    mean_iou: float
    mean_dice: float
    images: int

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{key}": float(value) for key, value in asdict(self).items()}


def iou(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union; two empty masks agree perfectly."""
    union = np.logical_or(prediction, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(prediction, truth).sum() / union)


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    total = prediction.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(prediction, truth).sum() / total)


def score_masks(predictions: list[np.ndarray], truths: list[np.ndarray]) -> SegmentationScores:
    """Mean per-image IoU and Dice over pairs of bool masks."""
    if len(predictions) != len(truths) or not predictions:
        raise ValueError(f"need the same positive number of predictions and truths, got {len(predictions)} and {len(truths)}")
    ious = [iou(p, t) for p, t in zip(predictions, truths, strict=True)]
    dices = [dice(p, t) for p, t in zip(predictions, truths, strict=True)]
    return SegmentationScores(mean_iou=float(np.mean(ious)), mean_dice=float(np.mean(dices)), images=len(ious))
