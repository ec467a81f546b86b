"""Reading a data set in the Kaggle Water Meters layout and splitting it stably.

Layout: ROOT/images/<name> (photo) and ROOT/masks/<name> (mask of the digit window, same file name).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from wms.core.files import copy_atomically, written_atomically
from wms.data.annotations import rasterize
from wms.inference.imaging import open_image

SPLITS = ("train", "val", "test")


class DatasetLayoutError(ValueError):
    """Raised when a folder is not in the Kaggle Water Meters layout."""


@dataclass(frozen=True)
class Pair:
    """A photo and its mask file; `polygon` (from data.csv) stands in for a missing mask file."""

    image: Path
    mask: Path
    polygon: tuple | None = None

    @property
    def name(self) -> str:
        return self.image.name


def split_of(image: Path, test_percent: int = 15, val_percent: int = 15) -> str:
    """The split of an image, decided by a hash of its bytes: adding images never moves another one."""
    return split_of_digest(hashlib.sha256(image.read_bytes()).hexdigest(), test_percent, val_percent)


def split_of_digest(sha256_hex: str, test_percent: int = 15, val_percent: int = 15) -> str:
    """The split for an image whose bytes have this sha256 (for callers that hashed them already)."""
    bucket = int(sha256_hex[:8], 16) % 100
    if bucket < test_percent:
        return "test"
    if bucket < test_percent + val_percent:
        return "val"
    return "train"


def split_pairs(pairs: list[Pair], digests: dict[str, str] | None = None) -> dict[str, list[Pair]]:
    """Pairs by split; `digests` (name -> sha256 of the photo's bytes) spares reading the photos again."""
    splits: dict[str, list[Pair]] = {name: [] for name in SPLITS}
    for pair in pairs:
        known = (digests or {}).get(pair.name)
        splits[split_of_digest(known) if known else split_of(pair.image)].append(pair)
    return splits


def mirror_pairs(pairs: list[Pair], destination: Path) -> int:
    """Make destination/images and destination/masks hold exactly these pairs; return how many files changed."""
    changed = 0
    for sub in ("images", "masks"):
        wanted = {pair.name: pair for pair in pairs}
        target_dir = destination / sub
        target_dir.mkdir(parents=True, exist_ok=True)
        for stale in [p for p in target_dir.iterdir() if p.name not in wanted]:
            stale.unlink()
            changed += 1
        for name, pair in wanted.items():
            source = pair.image if sub == "images" else pair.mask
            changed += _copy_if_changed(source, target_dir / name) if source.exists() else _write_polygon_mask(pair, target_dir)
    return changed


def _write_polygon_mask(pair: Pair, target_dir: Path) -> int:
    """Rasterize the data.csv polygon of a pair that has no mask file into target_dir/<name>."""
    target = target_dir / pair.name
    if target.exists():
        return 0
    mask = rasterize(pair.polygon, open_image(pair.image).size)
    with written_atomically(target) as partial:
        Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(partial, format="JPEG", quality=95)
    return 1


def _copy_if_changed(source: Path, target: Path) -> int:
    if target.exists() and target.stat().st_size == source.stat().st_size and target.read_bytes() == source.read_bytes():
        return 0
    copy_atomically(source, target)
    return 1
