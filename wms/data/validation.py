"""Validating a data set in the Kaggle layout: every pair is checked, none stops the rest.

Pairs are checked one at a time in worker processes (both cores, memory bounded by one pair a worker); rejected
files are reported with a reason and never deleted or moved.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import multiprocessing.pool
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from wms.core.progress import Progress, counted
from wms.data.annotations import Annotation, rasterize, read_annotations
from wms.data.pairs import DatasetLayoutError, Pair
from wms.inference.imaging import MASK_THRESHOLD, UnreadableImageError, open_image
from wms.inference.scores import iou

SINGLE_CHANNEL_MODES = ("1", "L", "I", "I;16", "F")
POLYGON_AGREEMENT = 0.9
"""A mask file and its data.csv polygon must overlap at least this much (IoU), or the pair is reported."""


@dataclass(frozen=True)
class MaskLimits:
    """A mask outside these bounds is rejected: empty, or so large it cannot be a digit window."""

    min_fraction: float = 0.0005
    max_fraction: float = 0.9


@dataclass(frozen=True)
class PairCheck:
    name: str
    reason: str | None = None
    file_digest: str = ""
    pixel_digest: str = ""
    mask_fraction: float = 0.0
    polygon_iou: float | None = None
    ambiguous_fraction: float = 0.0
    """Share of mask pixels far from both 0 and 255: near 0 for a real binary mask saved as JPEG."""


@dataclass
class ValidationReport:
    root: Path
    valid: list[Pair] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    mask_fractions: list[float] = field(default_factory=list)
    ambiguous_fractions: list[float] = field(default_factory=list)
    pixel_digests: dict[str, str] = field(default_factory=dict)
    file_digests: dict[str, str] = field(default_factory=dict)
    """sha256 of each valid photo's bytes (what wms.data.pairs.split_of hashes)."""
    polygon_disagreements: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict:
        fractions = np.array(self.mask_fractions or [0.0])
        return {
            "folder": str(self.root),
            "valid": len(self.valid),
            "rejected": self.rejected,
            "rejection_rate": round(len(self.rejected) / max(1, len(self.valid) + len(self.rejected)), 4),
            "mask_fraction": {
                "mean": round(float(fractions.mean()), 5),
                "min": round(float(fractions.min()), 5),
                "max": round(float(fractions.max()), 5),
            },
            "max_ambiguous_mask_fraction": round(max(self.ambiguous_fractions or [0.0]), 5),
            "polygon_disagreements": self.polygon_disagreements,
        }


def validate_folder(
    root: Path,
    limits: MaskLimits = MaskLimits(),
    workers: int = 2,
    allow_outside_links: bool = False,
    on_progress: Progress | None = None,
) -> ValidationReport:
    """Check every entry under root/images and root/masks; list each rejected one with its reason. `on_progress`
    hears (pairs checked, pairs to check) as the pairs are checked.

    A symbolic link to a file outside `root` is rejected unless `allow_outside_links`: the folder's version would
    otherwise change with files that nobody sees in it."""
    if not root.is_dir():
        raise DatasetLayoutError(f"{root} does not exist or is not a folder: give the folder that holds images/ and masks/")
    images_dir, masks_dir = root / "images", root / "masks"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise DatasetLayoutError(
            f"{root} is not in the Kaggle Water Meters layout: it needs the folders images/ and masks/ "
            "holding photos and masks with the same file names"
        )
    report = ValidationReport(root=root)
    annotations = _read_annotations(root, report)
    inside = None if allow_outside_links else root.resolve()
    image_names, bad_images = _usable_entries(images_dir, inside, report)
    mask_names, bad_masks = _usable_entries(masks_dir, inside, report)
    for orphan in sorted(mask_names - image_names - bad_images):
        report.rejected.append({"file": f"masks/{orphan}", "reason": "mask has no image"})
    candidates = []
    for name in sorted(image_names):
        polygon = annotations[name].polygon if name in annotations else None
        if name in bad_masks:
            report.rejected.append({"file": f"images/{name}", "reason": f"its mask was rejected: see masks/{name}"})
        elif name not in mask_names and polygon is None:
            report.rejected.append({"file": f"images/{name}", "reason": "image has no mask (and no polygon in data.csv)"})
        else:
            candidates.append(Pair(images_dir / name, masks_dir / name, polygon))
    checks = counted(_check_all(candidates, limits, workers), len(candidates), on_progress)
    _collect(report, {pair.name: pair for pair in candidates}, checks)
    return report


def _usable_entries(folder: Path, inside: Path | None, report: ValidationReport) -> tuple[set[str], set[str]]:
    """(usable, rejected) names in `folder`: every entry that is not a readable file in the data set gets a reason;
    links must stay `inside` that folder (None: links may go anywhere)."""
    usable, rejected = set(), set()
    for entry in sorted(folder.iterdir()):
        reason = _entry_problem(entry, inside)
        if reason:
            report.rejected.append({"file": f"{folder.name}/{entry.name}", "reason": reason})
            rejected.add(entry.name)
        else:
            usable.add(entry.name)
    return usable, rejected


def _entry_problem(entry: Path, inside: Path | None) -> str | None:
    if entry.is_symlink():
        target = entry.resolve()
        if not target.exists():
            return f"a link to {os.readlink(entry)}, which does not exist: copy the file in or remove the link"
        if inside is not None and not target.is_relative_to(inside):
            return (
                f"a link to {target}, outside {inside}: copy the file into the folder, or allow links that leave it "
                "(`wms data validate --allow-outside-links`, `wms data use --allow-outside-links`)"
            )
    if entry.is_dir():
        return "a folder, not an image file: the photos and masks lie directly in images/ and masks/"
    if not entry.is_file():
        return "not a regular file (a pipe, socket or device): only image files belong here"
    return None


def _read_annotations(root: Path, report: ValidationReport) -> dict[str, Annotation]:
    """data.csv's annotations when the file is there; its unreadable rows go to the rejected list."""
    if not (root / "data.csv").is_file():
        return {}
    annotations, problems = read_annotations(root / "data.csv")
    report.rejected.extend(problems)
    return annotations


def _check_all(pairs: list[Pair], limits: MaskLimits, workers: int) -> Iterator[PairCheck]:
    jobs = [(pair, limits) for pair in pairs]
    if workers <= 1 or len(jobs) < 8:
        yield from (_check_job(job) for job in jobs)
        return
    pool = _spawn_pool(workers)
    try:
        yield from pool.imap(_check_job, jobs, chunksize=4)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def _spawn_pool(workers: int) -> multiprocessing.pool.Pool:
    """Spawned workers that terminate() can stop, even where this process ignores SIGTERM.

    A child inherits ignored signals. A process started in the background by a shell without job control ignores
    SIGINT, and Dagster's in-process execution copies SIGINT's handler onto SIGTERM: workers spawned from it ignored
    SIGTERM, so terminate() reached none and join() waited for ever (the test suite hung so). While the workers are
    started, SIGTERM takes its default; the caller's handler comes back right after.
    """
    context = multiprocessing.get_context("spawn")
    if signal.getsignal(signal.SIGTERM) != signal.SIG_IGN or threading.current_thread() is not threading.main_thread():
        return context.Pool(workers)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        return context.Pool(workers)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _collect(report: ValidationReport, candidates: dict[str, Pair], checks: Iterator[PairCheck]) -> None:
    seen_files: dict[str, str] = {}
    seen_pixels: dict[str, str] = {}
    for check in checks:
        reason = check.reason or _duplicate_reason(check, seen_files, seen_pixels)
        if reason:
            report.rejected.append({"file": f"images/{check.name}", "reason": reason})
            continue
        seen_files[check.file_digest], seen_pixels[check.pixel_digest] = check.name, check.name
        report.valid.append(candidates[check.name])
        report.mask_fractions.append(check.mask_fraction)
        report.ambiguous_fractions.append(check.ambiguous_fraction)
        report.pixel_digests[check.name] = check.pixel_digest
        report.file_digests[check.name] = check.file_digest
        if check.polygon_iou is not None and check.polygon_iou < POLYGON_AGREEMENT:
            report.polygon_disagreements.append({"file": f"images/{check.name}", "iou": f"{check.polygon_iou:.3f}"})


def _duplicate_reason(check: PairCheck, seen_files: dict[str, str], seen_pixels: dict[str, str]) -> str | None:
    if check.file_digest in seen_files:
        return f"duplicate of images/{seen_files[check.file_digest]} (same bytes)"
    if check.pixel_digest in seen_pixels:
        return f"duplicate of images/{seen_pixels[check.pixel_digest]} (same pixels)"
    return None


def _check_job(job: tuple[Pair, MaskLimits]) -> PairCheck:
    return check_pair(*job)


def check_pair(pair: Pair, limits: MaskLimits = MaskLimits()) -> PairCheck:
    """Decode a photo and its mask fully and check them; the reason says what is wrong, or is None."""
    mask_exists = pair.mask.exists()
    try:
        for path, role in ((pair.image, "image"), (pair.mask, "mask")):
            if (role == "image" or mask_exists) and path.stat().st_size == 0:
                return PairCheck(pair.name, f"{role} file is empty")
        raw = pair.image.read_bytes()
    except OSError as error:
        return PairCheck(pair.name, f"cannot read {Path(error.filename or pair.image).name}: {error.strerror}")
    try:
        photo = open_image(raw).convert("RGB")
        mask_image = open_image(pair.mask) if mask_exists else Image.fromarray(rasterize(pair.polygon, photo.size))
    except UnreadableImageError as error:
        return PairCheck(pair.name, f"not a readable image: {error}")
    if mask_image.mode not in SINGLE_CHANNEL_MODES:
        return PairCheck(pair.name, f"mask is not single-channel (mode {mask_image.mode})")
    if photo.size != mask_image.size:
        return PairCheck(pair.name, f"image size {photo.size} differs from mask size {mask_image.size} after the EXIF turn")
    mask_values = np.asarray(mask_image.convert("L"))
    fraction = float((mask_values > MASK_THRESHOLD).mean())
    if fraction < limits.min_fraction:
        return PairCheck(pair.name, f"mask is empty ({fraction:.4%} of the pixels are white)")
    if fraction > limits.max_fraction:
        return PairCheck(pair.name, f"mask is nearly all white ({fraction:.1%} of the pixels)")
    pixels = hashlib.sha256(np.asarray(photo).tobytes()).hexdigest()
    ambiguous = float(((mask_values > 32) & (mask_values < 223)).mean())
    agreement = iou(mask_values > MASK_THRESHOLD, rasterize(pair.polygon, photo.size)) if mask_exists and pair.polygon else None
    return PairCheck(pair.name, None, hashlib.sha256(raw).hexdigest(), pixels, fraction, agreement, ambiguous)
