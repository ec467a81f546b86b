"""Copy the real photos, turned upright and scaled down, into a folder small enough to carry to a GPU machine.

The split of each pair is decided on the original files (wms.data.pairs.split_of) and written to splits.json, so the
GPU run trains and scores on the same split as the CPU runs.

    python benchmarks/prepare_real_subset.py ../shared/data/water-meters .gpu/water-meters --long-side 640
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

from wms.data.pairs import split_of
from wms.data.validation import validate_folder
from wms.inference.imaging import open_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("destination", type=Path)
    parser.add_argument("--long-side", type=int, default=640)
    args = parser.parse_args()
    for sub in ("images", "masks"):
        (args.destination / sub).mkdir(parents=True, exist_ok=True)
    splits = {}
    for pair in validate_folder(args.source).valid:
        splits[pair.name] = split_of(pair.image)
        photo = open_image(pair.image).convert("RGB")
        mask = open_image(pair.mask).convert("L").point(lambda value: 255 if value > 127 else 0)
        scale = args.long_side / max(photo.size)
        size = (round(photo.width * scale), round(photo.height * scale))
        photo.resize(size, Image.BILINEAR).save(args.destination / "images" / pair.name, quality=90)
        mask.resize(size, Image.NEAREST).save(args.destination / "masks" / pair.name, quality=95)
    (args.destination / "splits.json").write_text(json.dumps(splits, indent=0))
    print(f"wrote {len(splits)} pairs to {args.destination}")


if __name__ == "__main__":
    main()
