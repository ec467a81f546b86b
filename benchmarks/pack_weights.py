"""Carry a training checkpoint's best weights back from the device machine, whose files come back 16 MiB at most.

    python benchmarks/pack_weights.py pack WEIGHTS OUT_FOLDER        # float16, in 15 MiB parts (WEIGHTS: a state dict
                                                                     # or a training checkpoint: its best weights)
    python benchmarks/pack_weights.py join OUT_FOLDER WEIGHTS.pt     # one float32 state dict, for --initial-weights

The parts are named weights.part0, weights.part1, ... beside a weights.json that records each part's size, so that
a missing or truncated part is refused when joining.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import torch

PART_BYTES = 15 * 1024 * 1024


def pack(checkpoint: Path, folder: Path) -> None:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    best = (state["progress"]["best_state"] or state["average"]) if "progress" in state else state
    halved = {key: value.half() if value.is_floating_point() else value for key, value in best.items()}
    buffer = io.BytesIO()
    torch.save(halved, buffer)
    data = buffer.getvalue()
    parts = [data[start : start + PART_BYTES] for start in range(0, len(data), PART_BYTES)]
    folder.mkdir(parents=True, exist_ok=True)
    for index, part in enumerate(parts):
        (folder / f"weights.part{index}").write_bytes(part)
    manifest = {"source": checkpoint.name, "bytes": len(data), "parts": [len(part) for part in parts]}
    (folder / "weights.json").write_text(json.dumps(manifest, indent=1))
    print(f"{len(parts)} parts, {len(data) / 1e6:.1f} MB")


def join(folder: Path, destination: Path) -> None:
    manifest = json.loads((folder / "weights.json").read_text())
    parts = [(folder / f"weights.part{index}").read_bytes() for index in range(len(manifest["parts"]))]
    sizes = [len(part) for part in parts]
    if sizes != manifest["parts"]:
        raise SystemExit(f"parts are {sizes} bytes, the manifest says {manifest['parts']}: fetch them again")
    halved = torch.load(io.BytesIO(b"".join(parts)), map_location="cpu", weights_only=True)
    torch.save({key: value.float() if value.is_floating_point() else value for key, value in halved.items()}, destination)
    print(f"wrote {destination} from {len(parts)} parts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["pack", "join"])
    parser.add_argument("source", type=Path)
    parser.add_argument("destination", type=Path)
    args = parser.parse_args()
    (pack if args.action == "pack" else join)(args.source, args.destination)


if __name__ == "__main__":
    main()
