"""A deterministic synthetic data set in the Kaggle Water Meters layout.

Each sample is a meter-like photo (textured background, round meter face, a dark digit window with digits,
a small rotation, an off-axis perspective, uneven lighting and blur) and a mask of the window. Some photos are
stored turned, with an EXIF orientation tag that turns them back, as phone photos are. The same seed always gives
the same files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from wms.inference.imaging import EXIF_ORIENTATION_TAG

ROTATE_NEEDS_TAG_6 = Image.Transpose.ROTATE_90
"""Pixels stored turned a quarter counter-clockwise display upright with EXIF orientation 6."""


@dataclass(frozen=True)
class SyntheticSpec:
    count: int = 160
    seed: int = 0
    width: int = 400
    height: int = 300
    exif_share: float = 0.15


def generate_dataset(root: Path, spec: SyntheticSpec) -> list[str]:
    """Write `spec.count` image/mask pairs under root/images and root/masks; return the file names."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    names = []
    for index in range(spec.count):
        photo, mask, reading = _draw_sample(rng, spec)
        name = f"id_{index + 1}_value_{reading[0]}_{reading[1]}.jpg"
        _save_photo(photo, root / "images" / name, turned=rng.random() < spec.exif_share)
        mask.save(root / "masks" / name, quality=95)
        names.append(name)
    return names


def sample_pair(seed: int = 0, spec: SyntheticSpec | None = None) -> tuple[Image.Image, Image.Image]:
    """One synthetic photo and its mask, without writing files (a release's smoke test sends such a photo)."""
    photo, mask, _ = _draw_sample(np.random.default_rng(seed), spec or SyntheticSpec(count=1, seed=seed))
    return photo, mask


def _draw_sample(rng: np.random.Generator, spec: SyntheticSpec) -> tuple[Image.Image, Image.Image, tuple[int, int]]:
    width, height = (spec.width, spec.height) if rng.random() < 0.7 else (spec.height, spec.width)
    photo = _background(rng, width, height)
    mask = Image.new("L", (width, height), 0)
    window = _place_window(rng, width, height)
    _draw_face(ImageDraw.Draw(photo), rng, window)
    reading = (int(rng.integers(0, 1000)), int(rng.integers(0, 1000)))
    _draw_window(ImageDraw.Draw(photo), window, reading)
    ImageDraw.Draw(mask).rectangle(window, fill=255)
    angle = float(rng.uniform(-12, 12))
    fill = tuple(int(c) for c in rng.integers(40, 200, 3))
    photo = photo.rotate(angle, resample=Image.BILINEAR, fillcolor=fill)
    mask = mask.rotate(angle, resample=Image.NEAREST, fillcolor=0)
    coefficients = _perspective(rng, width, height)
    photo = photo.transform((width, height), Image.PERSPECTIVE, coefficients, Image.BILINEAR, fillcolor=fill)
    mask = mask.transform((width, height), Image.PERSPECTIVE, coefficients, Image.NEAREST, fillcolor=0)
    return _lighting(rng, photo), mask, reading


def _perspective(rng: np.random.Generator, width: int, height: int) -> tuple[float, ...]:
    """Coefficients that tilt the picture as a photo taken a little off-axis does (corners moved up to 8 %)."""
    source = [(0, 0), (width, 0), (width, height), (0, height)]
    target = [(x + rng.uniform(-0.08, 0.08) * width, y + rng.uniform(-0.08, 0.08) * height) for x, y in source]
    rows = []
    for (x, y), (u, v) in zip(source, target, strict=True):
        rows.append([u, v, 1, 0, 0, 0, -x * u, -x * v])
        rows.append([0, 0, 0, u, v, 1, -y * u, -y * v])
    solution = np.linalg.solve(np.array(rows), np.array([value for point in source for value in point], dtype=float))
    return tuple(float(value) for value in solution)


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    base = rng.integers(30, 220, size=3)
    noise = rng.normal(0, 18, size=(height // 8 + 1, width // 8 + 1, 3))
    texture = np.clip(base + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(texture).resize((width, height), Image.BICUBIC)


def _place_window(rng: np.random.Generator, width: int, height: int) -> tuple[int, int, int, int]:
    window_w = int(min(width, height) * rng.uniform(0.35, 0.55))
    window_h = int(window_w * rng.uniform(0.22, 0.32))
    left = int(rng.uniform(0.2, 0.8) * (width - window_w))
    top = int(rng.uniform(0.25, 0.75) * (height - window_h))
    return left, top, left + window_w, top + window_h


def _draw_face(draw: ImageDraw.ImageDraw, rng: np.random.Generator, window: tuple[int, int, int, int]) -> None:
    centre_x, centre_y = (window[0] + window[2]) / 2, (window[1] + window[3]) / 2 + (window[3] - window[1]) * 0.8
    radius = (window[2] - window[0]) * rng.uniform(0.8, 1.0)
    shade = int(rng.integers(190, 250))
    box = [centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius]
    draw.ellipse(box, fill=(shade, shade, shade - 10), outline=(60, 60, 60), width=3)


def _draw_window(draw: ImageDraw.ImageDraw, window: tuple[int, int, int, int], reading: tuple[int, int]) -> None:
    draw.rectangle(window, fill=(20, 20, 25))
    left, top, right, bottom = window
    text = f"{reading[0]:05d}{reading[1]:03d}"
    cell = (right - left) / len(text)
    for position, digit in enumerate(text):
        colour = (235, 235, 235) if position < 5 else (220, 40, 40)
        draw.text((left + cell * (position + 0.25), top + (bottom - top) * 0.2), digit, fill=colour)


def _lighting(rng: np.random.Generator, photo: Image.Image) -> Image.Image:
    pixels = np.asarray(photo).astype(np.float32)
    gradient = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.9, 1.3), pixels.shape[1])[None, :, None]
    lit = Image.fromarray(np.clip(pixels * gradient, 0, 255).astype(np.uint8))
    return lit.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0, 1.2))))


def _save_photo(photo: Image.Image, path: Path, turned: bool) -> None:
    if not turned:
        photo.save(path, quality=90)
        return
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = 6
    photo.transpose(ROTATE_NEEDS_TAG_6).save(path, quality=90, exif=exif.tobytes())
