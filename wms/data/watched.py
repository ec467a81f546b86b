"""What the automatic runs use: the watched photo source and the training recipe, recorded in the local state.

The Dagster UI, the daemon and its sensors, and `wms run` all read this one file, so they agree on the photos
whichever process asks. Changing it is an explicit act (`wms data use`, `wms run --data`), appended to a history
beside it; nothing falls back to the synthetic photos once a real source is recorded.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

FOLDER, POINTER, SYNTHETIC = "folder", "dvc_pointer", "synthetic"
KINDS = (FOLDER, POINTER, SYNTHETIC)


class WatchedSourceError(ValueError):
    """The recorded source is unreadable, or a new one is not a usable folder or pointer."""


@dataclass(frozen=True)
class WatchedSource:
    kind: str
    """folder (images/ and masks/ in the Kaggle layout), dvc_pointer (a .dvc file in a Git checkout) or synthetic."""
    location: str = ""
    """The folder or the pointer file, absolute; empty for synthetic photos."""
    training: dict = field(default_factory=dict)
    """The training settings of the automatic runs (preset and overrides of TrainingConfig); empty: the defaults."""
    set_at: str = ""
    reason: str = ""
    allow_outside_links: bool = False
    """Whether links in the folder to files outside it are photos (else validation rejects them)."""

    @property
    def is_synthetic(self) -> bool:
        return self.kind == SYNTHETIC

    @property
    def label(self) -> str:
        """What a model trained on it says it was trained on: 'synthetic', or the folder or pointer."""
        return SYNTHETIC if self.is_synthetic else self.location

    def describe(self) -> str:
        where = {FOLDER: f"the folder {self.location}", POINTER: f"the DVC pointer {self.location}"}.get(
            self.kind, "synthetic photos (no real source recorded: `wms data use DIR` sets one)"
        )
        recipe = ", ".join(f"{key}={value}" for key, value in sorted(self.training.items())) or "the default settings"
        links = " (links to files outside it count)" if self.allow_outside_links else ""
        return f"{where}{links}; automatic runs train with {recipe}"


UNSET = WatchedSource(SYNTHETIC, reason="nothing recorded")
RECORD_KEYS = ("kind", "location", "training", "set_at", "reason", "allow_outside_links")


def folder_source(folder: Path, training: dict, reason: str, allow_outside_links: bool = False) -> WatchedSource:
    folder = folder.expanduser().resolve()
    if not (folder / "images").is_dir():
        raise WatchedSourceError(f"{folder} has no images/ folder: a watched folder holds images/ and masks/ (Kaggle layout)")
    return WatchedSource(FOLDER, str(folder), training, reason=reason, allow_outside_links=allow_outside_links)


def pointer_source(pointer: Path, training: dict, reason: str) -> WatchedSource:
    pointer = pointer.expanduser().resolve()
    if pointer.suffix != ".dvc" or not pointer.is_file():
        raise WatchedSourceError(f"{pointer} is not a .dvc pointer file: give the .dvc file that `dvc add` wrote")
    return WatchedSource(POINTER, str(pointer), training, reason=reason)


def synthetic_source(training: dict, reason: str) -> WatchedSource:
    return WatchedSource(SYNTHETIC, "", training, reason=reason)


def read_watched(path: Path) -> WatchedSource:
    """The recorded source; synthetic photos when nothing was ever recorded. A damaged record is an error, not synthetic."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return UNSET
    except (OSError, ValueError) as error:
        raise WatchedSourceError(
            f"the watched source record {path} cannot be read ({error}): record it again with `wms data use`"
        ) from error
    if record.get("kind") not in KINDS:
        raise WatchedSourceError(
            f"{path} names no known source kind ({record.get('kind')!r}): record it again with `wms data use`"
        )
    return WatchedSource(**{key: record[key] for key in RECORD_KEYS if key in record})


def record_watched(path: Path, source: WatchedSource) -> WatchedSource:
    """Write the record atomically (readers never see half of it) and append the change to the history."""
    stamped = replace(source, set_at=datetime.now(UTC).isoformat(timespec="seconds"))
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(asdict(stamped), indent=2, sort_keys=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as scratch:
        scratch.write(text)
    os.replace(scratch.name, path)
    with open(history_path(path), "a") as history:
        history.write(json.dumps(asdict(stamped), sort_keys=True) + "\n")
    return stamped


def history_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}-history.jsonl")


def watched_history(path: Path) -> list[WatchedSource]:
    """Every recorded change, oldest first."""
    history = history_path(path)
    if not history.exists():
        return []
    return [
        WatchedSource(**{key: value for key, value in json.loads(line).items() if key in RECORD_KEYS})
        for line in history.read_text().splitlines()
        if line.strip()
    ]
