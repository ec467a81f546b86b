"""Whether a retrain starts from the champion's weights or from scratch.

New photos for the same recipe need not cost a whole training: the champion already knows the task, and a short
schedule over the grown train split adapts it. Anything that makes the champion's weights a poor or impossible start
(another encoder or input side, a change of the training code, no new data, an explicit request) trains afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

from wms.training.settings import TrainSettings, parse_channels

AUTO, SCRATCH = "auto", "scratch"
STARTS = (AUTO, SCRATCH)


@dataclass(frozen=True)
class Parent:
    """What decides whether a registered version can be fine-tuned: its version, network (encoder and decoder widths),
    input side and data."""

    version: str
    encoder: str
    image_size: int
    data_version: str
    decoder_channels: str = TrainSettings().decoder_channels


def scratch_reason(start: str, settings: TrainSettings, parent: Parent | None, data_version: str) -> str | None:
    """Why this training starts from scratch; None when it fine-tunes `parent` (start 'auto' and everything fits)."""
    if start not in STARTS:
        raise ValueError(f"start {start!r} is not one of {', '.join(STARTS)}")
    if start == SCRATCH:
        return "asked to start from scratch"
    if parent is None:
        return "there is no champion to start from"
    if not settings.fine_tune:
        return "the training settings have no fine_tune schedule"
    if parent.encoder != settings.encoder:
        return f"the champion (version {parent.version}) has encoder {parent.encoder}, these settings {settings.encoder}"
    if parse_channels(parent.decoder_channels) != parse_channels(settings.decoder_channels):
        return (
            f"the champion (version {parent.version}) has decoder widths {parent.decoder_channels}, these settings "
            f"{settings.decoder_channels}"
        )
    sides = {parent.image_size, settings.image_size, settings.fine_tune_side}
    if len(sides) > 1:
        return (
            f"the champion (version {parent.version}) takes {parent.image_size}-pixel input, these settings "
            f"{settings.image_size} and their fine_tune schedule {settings.fine_tune_side}"
        )
    if parent.data_version == data_version:
        return f"the champion (version {parent.version}) was trained on this data version already: no new data"
    return None
