"""Masks for a folder of photos, from a registered or exported model (what `wms predict` does)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wms.core.local_state import StateLayout
from wms.core.progress import Progress, counted
from wms.inference.imaging import IMAGE_SUFFIXES, UnreadableImageError, mask_to_png, read_photo
from wms.inference.overlays import answer_overlay
from wms.inference.predict import Segmenter, onnx_segmenter, window_polygon
from wms.serving.local_serving import resolve_local_model


@dataclass
class BatchReport:
    written: list[Path] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def resolve_segmenter(model_ref: str, layout: StateLayout) -> Segmenter:
    """The ONNX model behind a reference (wms.registry.model_reference), the one the service runs; LookupError when it
    leads nowhere."""
    return onnx_segmenter(resolve_local_model(model_ref, layout).onnx_path)


def predict_folder(
    segmenter: Segmenter,
    input_dir: Path,
    output_dir: Path,
    on_progress: Progress | None = None,
    overlay_dir: Path | None = None,
) -> BatchReport:
    """Write <stem>.png (0 and 255) for every photo in input_dir, and into `overlay_dir` when given <stem>.jpg, the
    photo with its window drawn on it; note each file that could not be read. `on_progress` hears (files done, files
    in all) after each file."""
    for folder in (output_dir, overlay_dir):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    report = BatchReport()
    files = sorted(p for p in input_dir.iterdir() if p.is_file())
    for path in counted(files, len(files), on_progress):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            report.failures[path.name] = f"not a photo (expected one of {', '.join(IMAGE_SUFFIXES)})"
            continue
        try:
            photo = read_photo(path)
            mask = segmenter.mask(photo)
        except UnreadableImageError as error:
            report.failures[path.name] = str(error)
            continue
        target = output_dir / f"{path.stem}.png"
        target.write_bytes(mask_to_png(mask))
        report.written.append(target)
        if overlay_dir is not None:
            answer_overlay(photo, mask, window_polygon(mask)).save(overlay_dir / f"{path.stem}.jpg", quality=90)
    return report
