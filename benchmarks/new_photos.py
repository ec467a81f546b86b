"""New photos to a new served champion: the time from copying held-back real pairs into the watched folder to the
new version answering at the inference URL, with the Dagster daemon doing the rest by itself.

    # 1. a watched folder of the real pairs less the held-back ones, and its cpu champion (from scratch, timed)
    python benchmarks/new_photos.py prepare ../shared/data/water-meters /tmp/wms-new-photos --hold-back 80 --watched 400
    WMS_HOME=/tmp/wms-new-photos/state wms run --preset cpu --data /tmp/wms-new-photos/watched
    # 2. with the daemon on, copy the held-back pairs in and time until the inference URL answers with the new version
    WMS_HOME=/tmp/wms-new-photos/state python benchmarks/new_photos.py measure /tmp/wms-new-photos
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

from wms.validation import validate_folder

HELD_BACK = "held-back"
WATCHED = "watched"


def choose(names: list[str], hold_back: int, watched: int) -> tuple[set[str], set[str]]:
    """(held back, watched): the first `hold_back` names by a hash of the name, then the next `watched` (0: all)."""
    ordered = sorted(names, key=lambda name: hashlib.sha256(name.encode()).hexdigest())
    rest = ordered[hold_back:]
    return set(ordered[:hold_back]), set(rest[:watched] if watched else rest)


def prepare(source: Path, root: Path, hold_back: int, watched: int) -> None:
    """Copy `watched` valid pairs of `source` into root/watched and `hold_back` others into root/held-back."""
    pairs = validate_folder(source).valid
    held, seen = choose([pair.name for pair in pairs], hold_back, watched)
    for pair in pairs:
        if pair.name not in held | seen:
            continue
        folder = root / (HELD_BACK if pair.name in held else WATCHED)
        for sub, path in (("images", pair.image), ("masks", pair.mask)):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, folder / sub / pair.name)
    print(f"{len(seen)} pairs in {root / WATCHED}, {len(held)} held back in {root / HELD_BACK}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="split the real pairs into a watched folder and held-back pairs")
    prep.add_argument("source", type=Path)
    prep.add_argument("root", type=Path)
    prep.add_argument("--hold-back", type=int, default=80, help="pairs kept out of the first training")
    prep.add_argument("--watched", type=int, default=400, help="pairs the first champion trains on (0: all the rest)")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.source, args.root, args.hold_back, args.watched)


if __name__ == "__main__":
    main()
