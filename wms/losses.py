"""Losses for a small foreground class (the digit window covers about 2 % of a photo)."""

from __future__ import annotations

import torch
from torch.nn import functional


def soft_dice_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - Dice per image, averaged over the batch; logits and targets are (N, 1, H, W)."""
    probabilities = torch.sigmoid(logits).flatten(1)
    targets = targets.flatten(1)
    intersection = (probabilities * targets).sum(1)
    union = probabilities.sum(1) + targets.sum(1)
    return (1 - (2 * intersection + eps) / (union + eps)).mean()


def bce_dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy for per-pixel calibration plus Dice, which the class imbalance cannot swamp."""
    return functional.binary_cross_entropy_with_logits(logits, targets) + soft_dice_loss(logits, targets)
