"""Losses for a small foreground class (the digit window covers about 2 % of a photo), chosen by name.

Every loss pairs a per-pixel term with a region term that the class imbalance cannot swamp. Focal and Lovasz
come from segmentation-models-pytorch; the Dice term is computed per image (smp's sums over the batch, which
lets large windows hide the small ones that per-image IoU is judged on).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from segmentation_models_pytorch.losses import FocalLoss, LovaszLoss
from torch.nn import functional

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def soft_dice_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - Dice per image, averaged over the batch; logits and targets are (N, 1, H, W)."""
    probabilities = torch.sigmoid(logits).flatten(1)
    targets = targets.flatten(1)
    intersection = (probabilities * targets).sum(1)
    union = probabilities.sum(1) + targets.sum(1)
    return (1 - (2 * intersection + eps) / (union + eps)).mean()


def bce_dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy for per-pixel calibration plus Dice."""
    return functional.binary_cross_entropy_with_logits(logits, targets) + soft_dice_loss(logits, targets)


_focal = FocalLoss(mode="binary", alpha=0.25, gamma=2.0)
_lovasz = LovaszLoss(mode="binary", per_image=True)


def focal_dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Focal loss (down-weights the many easy background pixels) plus Dice."""
    return _focal(logits, targets) + soft_dice_loss(logits, targets)


def bce_lovasz_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus the Lovasz hinge, a direct surrogate of per-image IoU."""
    return functional.binary_cross_entropy_with_logits(logits, targets) + _lovasz(logits, targets)


LOSSES: dict[str, Loss] = {"bce_dice": bce_dice_loss, "focal_dice": focal_dice_loss, "bce_lovasz": bce_lovasz_loss}


def loss_by_name(name: str) -> Loss:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}: choose one of {', '.join(sorted(LOSSES))}")
    return LOSSES[name]
