"""Segmentation metrics on bool masks (numpy), computed per image and over a whole split."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

POOR_IOU = 0.5
"""An image whose IoU is under this counts as a miss of the window."""


@dataclass(frozen=True)
class SegmentationScores:
    mean_iou: float
    """Mean of the per-image IoU: every photo counts the same, whatever the size of its window."""
    mean_dice: float
    dataset_iou: float
    """Intersection over union of all pixels of the split together: large windows weigh more."""
    precision: float
    """Share of the pixels predicted as window that are window."""
    recall: float
    """Share of the window pixels that were predicted."""
    images_below_half: int
    """Images whose IoU is under 0.5."""
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


@dataclass
class ScoreAccumulator:
    """Scores a split one image at a time, so that no split has to be held in memory."""

    ious: list[float]
    dices: list[float]
    intersection: int = 0
    union: int = 0
    predicted: int = 0
    true: int = 0

    @classmethod
    def empty(cls) -> ScoreAccumulator:
        return cls(ious=[], dices=[])

    def add(self, prediction: np.ndarray, truth: np.ndarray) -> float:
        """Score one image; return its IoU."""
        if prediction.shape != truth.shape:
            raise ValueError(f"prediction is {prediction.shape}, truth {truth.shape}: they must be the same size")
        self.ious.append(iou(prediction, truth))
        self.dices.append(dice(prediction, truth))
        self.intersection += int(np.logical_and(prediction, truth).sum())
        self.union += int(np.logical_or(prediction, truth).sum())
        self.predicted += int(prediction.sum())
        self.true += int(truth.sum())
        return self.ious[-1]

    def scores(self) -> SegmentationScores:
        if not self.ious:
            raise ValueError("no image was scored: the split is empty")
        return SegmentationScores(
            mean_iou=float(np.mean(self.ious)),
            mean_dice=float(np.mean(self.dices)),
            dataset_iou=self.intersection / self.union if self.union else 1.0,
            precision=self.intersection / self.predicted if self.predicted else float(self.true == 0),
            recall=self.intersection / self.true if self.true else 1.0,
            images_below_half=sum(value < POOR_IOU for value in self.ious),
            images=len(self.ious),
        )


def score_masks(predictions: list[np.ndarray], truths: list[np.ndarray]) -> SegmentationScores:
    """Scores of pairs of bool masks."""
    if len(predictions) != len(truths) or not predictions:
        raise ValueError(f"need the same positive number of predictions and truths, got {len(predictions)} and {len(truths)}")
    accumulator = ScoreAccumulator.empty()
    for prediction, truth in zip(predictions, truths, strict=True):
        accumulator.add(prediction, truth)
    return accumulator.scores()
