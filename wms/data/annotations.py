"""The optional data.csv of the Kaggle layout: photo_name, value, location.

`location` is a Python literal such as {'type': 'polygon', 'data': [{'x': 0.31, 'y': 0.30}, ...]} with coordinates
normalised to [0, 1] of the photo as displayed; it is read with ast.literal_eval, never as JSON.
"""

from __future__ import annotations

import ast
import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

Polygon = tuple[tuple[float, float], ...]


class AnnotationError(ValueError):
    """A row of data.csv cannot be read; the message names the row and the problem."""


@dataclass(frozen=True)
class Annotation:
    value: str
    polygon: Polygon | None


def read_annotations(csv_path: Path) -> tuple[dict[str, Annotation], list[dict[str, str]]]:
    """Annotations by photo name, and the rows that could not be read (file and reason)."""
    annotations: dict[str, Annotation] = {}
    problems: list[dict[str, str]] = []
    with csv_path.open(newline="", encoding="utf-8") as stream:
        for line, row in enumerate(csv.DictReader(stream), start=2):
            try:
                name = Path(row["photo_name"]).name
                annotations[name] = Annotation(value=row.get("value", ""), polygon=parse_location(row.get("location", "")))
            except (AnnotationError, KeyError) as error:
                problems.append({"file": f"data.csv line {line}", "reason": f"unreadable annotation: {error}"})
    return annotations, problems


def parse_location(text: str) -> Polygon | None:
    """The polygon of a location literal; None for an empty cell."""
    if not text or not text.strip():
        return None
    try:
        location = ast.literal_eval(text)
        points = tuple((float(point["x"]), float(point["y"])) for point in location["data"])
    except (ValueError, SyntaxError, TypeError, KeyError) as error:
        raise AnnotationError(f"location {text[:60]!r} is not a polygon literal ({error})") from error
    if location.get("type") != "polygon" or len(points) < 3:
        raise AnnotationError(f"location {text[:60]!r} is not a polygon of at least 3 points")
    if not all(-0.01 <= value <= 1.01 for point in points for value in point):
        raise AnnotationError("polygon coordinates must be normalised to [0, 1]")
    return points


def rasterize(polygon: Polygon, size: tuple[int, int]) -> np.ndarray:
    """A bool mask of `size` (width, height) that is True inside the polygon."""
    width, height = size
    canvas = Image.new("L", size, 0)
    ImageDraw.Draw(canvas).polygon([(x * width, y * height) for x, y in polygon], fill=255)
    return np.asarray(canvas) > 0
