"""How far long work has come: counted steps for progress bars, and a training's epochs with the time left."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

Item = TypeVar("Item")
Progress = Callable[[int, int], None]
"""Told (done, total) as work advances."""


def counted(items: Iterable[Item], total: int, on_progress: Progress | None) -> Iterator[Item]:
    """The items, telling `on_progress` how many were handed over once each is done with."""
    if on_progress is not None:
        on_progress(0, total)
    for done, item in enumerate(items, start=1):
        yield item
        if on_progress is not None:
            on_progress(done, total)


@dataclass
class EpochProgress:
    """A training's place (cycle, epoch, epochs left) and the time left at the pace of the epochs this process ran."""

    total_epochs: int
    cycles: int = 1
    clock: Callable[[], float] = time.monotonic
    started: float | None = field(default=None, init=False)
    first_epoch: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def after(self, epoch: int, cycle: int = 1) -> str:
        """Where the training stands once `epoch` (counted over all cycles, from 1) has ended."""
        if self.first_epoch == 0:
            self.first_epoch = epoch  # a resumed training's earlier epochs took no time here
        ran = epoch - self.first_epoch + 1
        left = max(self.total_epochs - epoch, 0)
        seconds_left = (self.clock() - self.started) / ran * left
        where = f"cycle {cycle}/{self.cycles}, " if self.cycles > 1 else ""
        return f"{where}epoch {epoch}/{self.total_epochs}, {left} left, about {duration(seconds_left)} to go"


def duration(seconds: float) -> str:
    """'45 s', '12 min', '2 h 05 min'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60:02d} min"
