"""What each speed lever gives a training on this machine, alone and together, beside the present recipe.

Each variant is the `cpu` preset's 192-pixel cycle with some settings changed; it trains two epochs on a subset of the
real photos through wms.training.train (the training the platform runs: data, augmentation, the step, validation),
and its second epoch is timed (the first warms up, and holds torch.compile's compiling). The variants take turns,
round after round, so a change in the machine's speed during the run touches them all alike; the figures are
medians over the rounds, and each is given as a ratio to the present recipe measured in the same run.

    python benchmarks/cpu_levers.py ../shared/data/water-meters --output benchmarks/results/cpu-levers.json
    python benchmarks/cpu_levers.py ../shared/data/water-meters --compile   # also torch.compile (minutes to compile)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from emit import emit

from wms.data.pairs import Pair, split_pairs
from wms.data.synthetic import SyntheticSpec, generate_dataset
from wms.data.validation import validate_folder
from wms.training.settings import preset
from wms.training.speed import cpu_feature_flags, cpu_model_name, resolve_precision
from wms.training.train import train

PRESENT = {"precision": "fp32"}
LIGHT_DECODER = "128 64 32 16 16"
VARIANTS: dict[str, dict] = {  # the present recipe first: the others are given as ratios to it
    "present recipe (fp32, channels_last, smp decoder 256-16)": PRESENT,
    "bf16 autocast": {"precision": "bf16"},
    f"light decoder ({LIGHT_DECODER})": {**PRESENT, "decoder_channels": LIGHT_DECODER},
    "one DataLoader worker beside the step": {**PRESENT, "workers": 1},
    "one thread": {**PRESENT, "threads": 1},
    "bf16 + light decoder": {"precision": "bf16", "decoder_channels": LIGHT_DECODER},
    "bf16 + light decoder + a worker": {"precision": "bf16", "decoder_channels": LIGHT_DECODER, "workers": 1},
}
COMPILED = {"bf16 + light decoder, torch.compile": {"precision": "bf16", "decoder_channels": LIGHT_DECODER, "compile": True}}


def subset(splits: dict[str, list[Pair]], train_photos: int, val_photos: int) -> dict[str, list[Pair]]:
    return {"train": splits["train"][:train_photos], "val": splits["val"][:val_photos], "test": splits["test"][:4]}


def time_variant(splits: dict[str, list[Pair]], changes: dict) -> dict[str, float]:
    """Seconds of the second epoch's training pass and validation, per photo, and the first pass's extra seconds
    (with torch.compile: its compiling, from an empty cache as a fresh machine has it)."""
    settings = preset("cpu").with_overrides(cycles="2:0.001:192", validate_every=1, **changes)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        torch._dynamo.reset()
        result = train(splits, settings)
    first, second = result.history
    return {
        "pass_ms_per_photo": second["train_pass_seconds"] * 1000 / len(splits["train"]),
        "val_ms_per_photo": second["val_seconds"] * 1000 / len(splits["val"]),
        "first_pass_extra_s": first["train_pass_seconds"] - second["train_pass_seconds"],
        "wall_s": time.perf_counter() - started,
    }


def spread(rounds: list[dict], key: str) -> list[float]:
    return [round(min(t[key] for t in rounds), 1), round(max(t[key] for t in rounds), 1)]


def summarize(timings: dict[str, list[dict]]) -> dict[str, dict]:
    baseline = statistics.median(t["pass_ms_per_photo"] for t in timings[next(iter(timings))])
    base_val = statistics.median(t["val_ms_per_photo"] for t in timings[next(iter(timings))])
    summary = {}
    for name, rounds in timings.items():
        pass_ms = statistics.median(t["pass_ms_per_photo"] for t in rounds)
        val_ms = statistics.median(t["val_ms_per_photo"] for t in rounds)
        summary[name] = {
            "settings": VARIANTS.get(name) or COMPILED[name],
            "pass_ms_per_photo": round(pass_ms, 1),
            "pass_ms_per_photo_range": spread(rounds, "pass_ms_per_photo"),
            "pass_speedup": round(baseline / pass_ms, 2),
            "val_ms_per_photo": round(val_ms, 1),
            "val_speedup": round(base_val / val_ms, 2),
            "first_pass_extra_s": round(statistics.median(t["first_pass_extra_s"] for t in rounds), 1),
            "cold_first_pass_extra_s": round(rounds[0]["first_pass_extra_s"], 1),
            "rounds": len(rounds),
            "each_round": rounds,
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="?", help="photos in the Kaggle layout (default: generated ones)")
    parser.add_argument("--train-photos", type=int, default=96)
    parser.add_argument("--val-photos", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (compiling takes minutes)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or Path(scratch) / "synthetic"
        if args.data is None:
            generate_dataset(data, SyntheticSpec())
        report = validate_folder(data)
        splits = subset(split_pairs(report.valid, report.file_digests), args.train_photos, args.val_photos)
        variants = VARIANTS | (COMPILED if args.compile else {})
        timings: dict[str, list[dict]] = {name: [] for name in variants}
        for number in range(1, args.rounds + 1):
            for name, changes in variants.items():
                timings[name].append(time_variant(splits, changes))
                print(f"round {number}: {name}: {timings[name][-1]}", flush=True)
    flags = sorted(cpu_feature_flags() & {"avx512_bf16", "amx_bf16", "avx512_vnni", "avx512f", "avx2"})
    emit(
        {
            "benchmark": "cpu_levers.py",
            "data": str(data),
            "machine": f"{cpu_model_name() or platform.machine()}, {torch.get_num_threads()} threads, flags {' '.join(flags)}",
            "torch": torch.__version__,
            "auto_precision": resolve_precision("auto", torch.device("cpu")).reason,
            "train_photos": len(splits["train"]),
            "val_photos": len(splits["val"]),
            "image_size": 192,
            "batch_size": preset("cpu").batch_size,
            "levers": summarize(timings),
        },
        args.output,
    )


if __name__ == "__main__":
    main()
