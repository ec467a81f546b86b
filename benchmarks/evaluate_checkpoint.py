"""Score a training checkpoint's best weights on a split, with and without each inference step.

Variants: one look or two (whole photo, then a zoom on the window), a mirrored zoomed look, the probability
threshold, and the mask cleanup (none, largest region with holes filled, convex hull). Prints one JSON line per
variant with the scores and the model's mean time per photo (cleanup not included), then the best variant.
Choose the variant on val, then report it on test.

    python benchmarks/evaluate_checkpoint.py ../shared/data/water-meters .wms/bench-checkpoints/cpu-real/last.pt
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from train_benchmark import load_splits

from wms.inference.imaging import read_mask, read_photo
from wms.inference.predict import Segmenter
from wms.inference.scores import ScoreAccumulator
from wms.training.model import TorchBackend, unet_for
from wms.training.settings import TrainSettings

LOOKS = {
    "one look": {"refine": False},
    "two looks": {"refine": True},
    "two looks, zoom on the most probable region": {"refine": True, "zoom_on": "mass"},
    "three looks (a second zoom, framed on the first)": {"refine": True, "zoom_rounds": 2},
    "two looks, photo not shrunk": {"refine": True, "max_side": 100_000},
    "two looks, mirrored zoom": {"refine": True, "flip_zoomed": True},
    "two looks, tighter zoom (margin 1.3)": {"refine": True, "zoom_margin": 1.3},
    "two looks, looser zoom (margin 2.0)": {"refine": True, "zoom_margin": 2.0},
    "two looks, tighter zoom (margin 1.3), mirrored": {"refine": True, "zoom_margin": 1.3, "flip_zoomed": True},
}
THRESHOLDS = (0.35, 0.5, 0.65)
CLEANUPS = ("none", "largest", "convex")


def load_best(checkpoint: Path, plain: dict | None = None) -> tuple[torch.nn.Module, dict]:
    """The best weights of a training checkpoint (or of train_benchmark.py --weights), or of a plain state dict given
    the settings it was trained with (`plain`: encoder, image_size, decoder_channels)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if "progress" not in state:
        if not plain:
            raise SystemExit(f"{checkpoint} is a plain state dict, not a training checkpoint: give --encoder and --image-size")
        progress = {"best_state": state, "epoch": "?", "best_epoch": "?", "best_iou": float("nan")}
        state = {"settings": plain, "progress": progress}
    model = unet_for(TrainSettings.from_params(state["settings"])).eval()
    model.load_state_dict(state["progress"]["best_state"])
    return model, state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--splits", type=Path, help="JSON file name -> split (as prepare_real_subset.py writes)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, help="score only the first N photos of the split (a quick look)")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--encoder", help="for a plain state dict: its encoder")
    parser.add_argument("--image-size", type=int, help="for a plain state dict: the input side it was trained at")
    parser.add_argument("--decoder-channels", default="256 128 64 32 16", help="for a plain state dict: its decoder widths")
    parser.add_argument("--shipped-only", action="store_true", help="only the inference that ships (two looks, 0.5, largest)")
    parser.add_argument("--look", action="append", choices=list(LOOKS), help="score only these looks (repeatable)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    plain = {"encoder": args.encoder, "image_size": args.image_size, "decoder_channels": args.decoder_channels}
    model, state = load_best(args.checkpoint, plain if args.encoder and args.image_size else None)
    pairs = load_splits(args.data, args.splits)[args.split][: args.limit]
    photos = [read_photo(pair.image) for pair in pairs]
    truths = [read_mask(pair.mask) for pair in pairs]
    progress = state["progress"]
    print(
        f"{args.checkpoint}: epoch {progress['epoch']}, best epoch {progress['best_epoch']} (val IoU {progress['best_iou']:.4f})"
    )
    results = {}
    looks = {"two looks": LOOKS["two looks"]} if args.shipped_only else LOOKS
    looks = {name: LOOKS[name] for name in args.look} if args.look else looks
    for look, options in looks.items():
        segmenter = Segmenter(TorchBackend(model), state["settings"]["image_size"], **options)
        started = time.perf_counter()
        probabilities = [segmenter.probabilities(photo) for photo in photos]
        milliseconds = round((time.perf_counter() - started) / len(photos) * 1000, 1)
        for threshold in (0.5,) if args.shipped_only else THRESHOLDS:
            for cleanup in ("largest",) if args.shipped_only else CLEANUPS:
                judge = Segmenter(segmenter.backend, segmenter.image_size, threshold=threshold, cleanup=cleanup)
                accumulator = ScoreAccumulator.empty()
                for probability, truth in zip(probabilities, truths, strict=True):
                    accumulator.add(judge.clean(probability > threshold), truth)
                name = f"{look}, threshold {threshold}, cleanup {cleanup}"
                results[name] = {**accumulator.scores().as_dict(), "ms_per_photo_model": milliseconds}
                print(json.dumps({"variant": name, "split": args.split, **results[name]}), flush=True)
    best = max(results, key=lambda name: results[name]["mean_iou"])
    print(f"best on {args.split}: {best}: {json.dumps(results[best])}")
    if args.output:
        summary = {"checkpoint": str(args.checkpoint), "settings": state["settings"], "split": args.split}
        summary |= {"best_epoch": progress["best_epoch"], "best_variant": best, "variants": results}
        args.output.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
