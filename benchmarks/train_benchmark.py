"""Train U-Nets on a data folder and print per-epoch progress, test scores and inference timings.

Meant for the lent GPU (bf16, channels_last) but runs anywhere; with --splits the split comes from a JSON file
(name -> train/val/test), otherwise from wms.data.split_pairs.

    python benchmarks/train_benchmark.py DATA --encoder resnet34 --image-size 512 --epochs 40 --batch-size 16
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from wms.data import Pair, split_pairs
from wms.train import TrainSettings, resolve_device, train
from wms.validation import validate_folder


def load_splits(root: Path, splits_file: Path | None) -> dict[str, list[Pair]]:
    pairs = validate_folder(root).valid
    if splits_file is None:
        return split_pairs(pairs)
    assignment = json.loads(splits_file.read_text())
    return {name: [pair for pair in pairs if assignment[pair.name] == name] for name in ("train", "val", "test")}


def time_inference(model: torch.nn.Module, image_size: int, device: torch.device, batch: int, repeats: int) -> list[float]:
    model = model.to(device).eval()
    example = torch.zeros(batch, 3, image_size, image_size, device=device)
    timings = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for index in range(repeats + 5):
            started = time.perf_counter()
            model(example)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if index >= 5:
                timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--splits", type=Path)
    parser.add_argument("--encoder", default="resnet34")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    splits = load_splits(args.data, args.splits)
    settings = TrainSettings(args.encoder, args.image_size, args.epochs, args.batch_size, args.learning_rate, threads=8)
    device = resolve_device("auto")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"{name}: {settings} on { {k: len(v) for k, v in splits.items()} }", flush=True)
    started = time.perf_counter()
    result = train(
        splits, settings, on_epoch=lambda e, m: print(f"epoch {e} {time.perf_counter() - started:.0f}s {m}", flush=True)
    )
    single = time_inference(result.model, args.image_size, device, 1, 50)
    batched = time_inference(result.model, args.image_size, device, 16, 20)
    report = {
        "device": name,
        "settings": settings.as_params(),
        "test": result.test_scores.as_dict(),
        "best_epoch": result.best_epoch,
        "train_seconds": round(result.seconds, 1),
        "seconds_per_epoch": round(result.seconds / args.epochs, 2),
        "batch1_p50_ms": round(float(np.percentile(single, 50)) * 1000, 2),
        "batch1_p95_ms": round(float(np.percentile(single, 95)) * 1000, 2),
        "batch16_images_per_s": round(16 / float(np.median(batched)), 1),
    }
    print(json.dumps(report), flush=True)
    if args.output:
        args.output.write_text(json.dumps({**report, "history": result.history}, indent=1))


if __name__ == "__main__":
    main()
