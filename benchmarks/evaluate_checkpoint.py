"""Score a training checkpoint's best weights on a split, with and without each inference step.

Variants: one look or two (whole photo, then a zoom on the window), mask cleanup (none, largest region with holes
filled, convex hull), and a mirrored zoomed look. Prints one JSON line per variant with the scores and the mean
time per photo, then the best variant.

    python benchmarks/evaluate_checkpoint.py ../shared/data/water-meters .wms/bench-checkpoints/cpu-real/last.pt
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from train_benchmark import load_splits

from wms.imaging import read_mask, read_photo
from wms.metrics import ScoreAccumulator
from wms.model import build_unet
from wms.predict import Segmenter, TorchBackend

VARIANTS = {
    "one look": {"refine": False, "cleanup": "none"},
    "two looks": {"refine": True, "cleanup": "none"},
    "two looks, largest region": {"refine": True, "cleanup": "largest"},
    "two looks, convex hull": {"refine": True, "cleanup": "convex"},
    "two looks, mirrored zoom, largest region": {"refine": True, "cleanup": "largest", "flip_zoomed": True},
    "two looks, mirrored zoom, convex hull": {"refine": True, "cleanup": "convex", "flip_zoomed": True},
}


def load_best(checkpoint: Path) -> tuple[torch.nn.Module, dict]:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    settings = state["settings"]
    model = build_unet(settings["encoder"]).eval()
    model.load_state_dict(state["progress"]["best_state"])
    return model, state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--splits", type=Path, help="JSON file name -> split (as prepare_real_subset.py writes)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, state = load_best(args.checkpoint)
    pairs = load_splits(args.data, args.splits)[args.split]
    photos = [read_photo(pair.image) for pair in pairs]
    truths = [read_mask(pair.mask) for pair in pairs]
    progress = state["progress"]
    print(
        f"{args.checkpoint}: epoch {progress['epoch']}, best epoch {progress['best_epoch']} (val IoU {progress['best_iou']:.4f})"
    )
    results = {}
    for name, options in VARIANTS.items():
        segmenter = Segmenter(TorchBackend(model), state["settings"]["image_size"], **options)
        accumulator, started = ScoreAccumulator.empty(), time.perf_counter()
        for photo, truth in zip(photos, truths, strict=True):
            accumulator.add(segmenter.mask(photo), truth)
        seconds = (time.perf_counter() - started) / len(photos)
        results[name] = {**accumulator.scores().as_dict(), "ms_per_photo": round(seconds * 1000, 1)}
        print(json.dumps({"variant": name, "split": args.split, **results[name]}), flush=True)
    best = max(results, key=lambda name: results[name]["mean_iou"])
    print(f"best on {args.split}: {best}")
    if args.output:
        args.output.write_text(
            json.dumps(
                {
                    "checkpoint": str(args.checkpoint),
                    "settings": state["settings"],
                    "split": args.split,
                    "best_epoch": progress["best_epoch"],
                    "variants": results,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
