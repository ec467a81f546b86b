"""Checkpoints of a training, one per epoch, so that a killed training resumes where it stopped."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch

from wms.core.files import written_atomically

LAST = "last.pt"


class WeightAverage:
    """An exponential moving average of a model's weights; BatchNorm statistics are averaged the same way.

    Validating and shipping the average rather than the last weights steadies the choice of the best epoch:
    from-scratch training on a few hundred photos swings by several IoU points from one epoch to the next.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))  # follow closely while the weights are young
        for average, current in zip(self.module.state_dict().values(), model.state_dict().values(), strict=True):
            if average.dtype.is_floating_point:
                average.mul_(decay).add_(current.detach(), alpha=1 - decay)
            else:
                average.copy_(current)


@dataclass
class Progress:
    """What a checkpoint holds beyond the weights: where the training is and what it has found so far."""

    epoch: int = 0
    best_iou: float = -1.0
    best_epoch: int = 0
    best_state: dict | None = None
    history: list[dict[str, float]] = field(default_factory=list)


def save_checkpoint(
    folder: Path, settings: dict, progress: Progress, model, average: WeightAverage, optimizer, scheduler
) -> Path:
    """Write the checkpoint of the epoch just finished; a reader never sees a half-written file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LAST
    with written_atomically(path) as partial:
        torch.save(
            {
                "settings": settings,
                "progress": progress.__dict__,
                "model": model.state_dict(),
                "average": average.module.state_dict(),
                "average_updates": average.updates,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
            },
            partial,
        )
    return path


def resume_checkpoint(folder: Path, settings: dict, model, average: WeightAverage, optimizer, scheduler) -> Progress | None:
    """Load the last checkpoint into the given objects if there is one for these settings; return its progress."""
    path = folder / LAST
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["settings"] != settings:
        return None
    model.load_state_dict(state["model"])
    average.module.load_state_dict(state["average"])
    average.updates = state["average_updates"]
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return Progress(**state["progress"])
