"""Train a U-Net with a preset and print per-epoch progress, images per second, test scores and inference timings.

Images per second are given over the whole training (validation included) and over the training passes alone;
the latter, times the FLOPs of a forward and backward pass, is the achieved TFLOP/s, compared on a GPU with its
dense bf16 peak.

DATA is a folder in the Kaggle layout (real photos: ../shared/data/water-meters); without it, the project's
synthetic data set is generated into a temporary folder. The split is wms.data.pairs's (by file digest), or the one in
a --splits JSON file (name -> train/val/test). Examples:

    python benchmarks/train_benchmark.py --preset demo                       # CPU figure of the demo preset
    python benchmarks/train_benchmark.py ../shared/data/water-meters --preset cpu \\
        --checkpoints .wms/bench-checkpoints/cpu --output benchmarks/results/cpu-real.json
    python benchmarks/train_benchmark.py ../shared/data/water-meters --preset full --set encoder=mobilenet_v2 \\
        --set image_size=192 --set epochs=60

Settings are chosen as everywhere else (wms.training.settings): a preset, and `--set key=value` for any setting.
Every run is logged to MLflow (the local state's store, experiment wms-benchmarks, unless --tracking-uri says
otherwise): its settings, each epoch, the test scores and the figures printed here.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import torch

from wms.core.local_state import MODEL_NAME, StateLayout, default_home
from wms.data.pairs import Pair, split_pairs
from wms.data.synthetic import SyntheticSpec, generate_dataset
from wms.data.validation import validate_folder
from wms.registry.model_registry import ModelRegistry
from wms.training.settings import PRESETS, TrainSettings, parse_assignment, settings_for
from wms.training.speed import cpu_model_name
from wms.training.train import resolve_device, train, validates


def load_splits(root: Path, splits_file: Path | None) -> dict[str, list[Pair]]:
    report = validate_folder(root)
    if splits_file is None:
        return split_pairs(report.valid, report.file_digests)
    assignment = json.loads(splits_file.read_text())
    return {name: [pair for pair in report.valid if assignment[pair.name] == name] for name in ("train", "val", "test")}


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


PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L4": 121.0}
"""Dense bf16 tensor-core peaks from the vendors' data sheets, for the share of the FLOP-bound limit."""


def training_flops_per_image(encoder: str, image_size: int) -> float:
    """FLOPs of one forward and backward pass of one image, counted by PyTorch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    from wms.training.model import build_unet

    model = build_unet(encoder)
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(2, 3, image_size, image_size)).sum().backward()
    return counter.get_total_flops() / 2


def mean_training_flops(settings: TrainSettings) -> float:
    """FLOPs per image of a training step, averaged over the epochs: with cycles, each at its own input side."""
    cycles = settings.schedule()
    return sum(training_flops_per_image(c.encoder, c.image_size) * c.epochs for c in cycles) / settings.epochs


def peak_tflops(device_name: str) -> float | None:
    return next((peak for name, peak in PEAK_BF16_TFLOPS.items() if name in device_name), None)


BENCHMARK_EXPERIMENT = "wms-benchmarks"


def benchmark_tracking(tracking_uri: str | None) -> ModelRegistry:
    """Where benchmark runs are logged: the given MLflow, else the local state's store (its artefacts beside it)."""
    if tracking_uri:
        return ModelRegistry(tracking_uri, MODEL_NAME, experiment_name=BENCHMARK_EXPERIMENT)
    layout = StateLayout(default_home())
    layout.create()
    return ModelRegistry(
        layout.mlflow_tracking_uri, MODEL_NAME, BENCHMARK_EXPERIMENT, artifact_location=layout.mlflow_artifacts.as_uri()
    )


def settings_from(args: argparse.Namespace) -> TrainSettings:
    try:
        return settings_for({"preset": args.preset, **dict(parse_assignment(text) for text in args.set)})
    except ValueError as error:
        raise SystemExit(f"train_benchmark.py: {error}") from None


def epochs_within(splits: dict[str, list[Pair]], settings: TrainSettings, minutes: float) -> int:
    """How many epochs of `settings` fit in `minutes`, from a two-epoch run: its second epoch sets the pace of a
    training pass and of a validation, the rest (loading the photos, the first epoch's warm-up, scoring test) is
    counted once."""
    marks, passes = [time.perf_counter()], []

    def mark(epoch: int, metrics: dict) -> None:
        marks.append(time.perf_counter())
        passes.append(metrics["train_pass_seconds"])

    train(splits, settings.with_overrides(epochs=2, patience=0, validate_every=1), on_epoch=mark)
    epoch_seconds = marks[2] - marks[1]
    fixed = time.perf_counter() - marks[0] - 2 * epoch_seconds
    epochs = fitting_epochs(settings, minutes * 60 - fixed, passes[1], epoch_seconds - passes[1])
    print(
        f"probe: {passes[1]:.1f} s per training pass, {epoch_seconds - passes[1]:.1f} s per validation, {fixed:.0f} s "
        f"fixed: {epochs} epochs fit in {minutes} min (validating every {settings.validate_every} early)",
        flush=True,
    )
    return epochs


def fitting_epochs(settings: TrainSettings, seconds: float, pass_seconds: float, validation_seconds: float) -> int:
    """The most epochs (at least 2) whose training passes and validations (as `validates` schedules them) fit."""
    pass_seconds = max(pass_seconds, 1e-3)
    epochs = 2
    while True:
        longer = settings.with_overrides(epochs=epochs + 1)
        validations = sum(validates(epoch, longer) for epoch in range(1, epochs + 2))
        if (epochs + 1) * pass_seconds + validations * validation_seconds > seconds:
            return epochs
        epochs += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="?")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--splits", type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change one setting of the preset")
    parser.add_argument("--tracking-uri", help="the MLflow server or store the run is logged to (default: the local state's)")
    parser.add_argument("--checkpoints", type=Path, help="save every epoch here and resume from it")
    parser.add_argument("--minutes", type=float, help="instead of --epochs: as many epochs as fit, timed on two first")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--weights", type=Path, help="save the best weights here (with the settings, as a checkpoint)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data
        if data is None:
            data = Path(scratch) / "synthetic"
            generate_dataset(data, SyntheticSpec())
        run(args, data)


def run(args: argparse.Namespace, data: Path) -> None:
    splits = load_splits(data, args.splits)
    settings = settings_from(args)
    if args.minutes and settings.cycles:
        raise SystemExit("--minutes sizes one schedule, and these settings train in cycles: give --set cycles= or no --minutes")
    if args.minutes:
        settings = settings.with_overrides(epochs=epochs_within(splits, settings, args.minutes))
    device = resolve_device(settings.device)
    cpu = f"cpu ({torch.get_num_threads()} threads) {cpu_model_name()}"
    name = torch.cuda.get_device_name() if device.type == "cuda" else cpu
    print(f"{name}: {settings} on { {k: len(v) for k, v in splits.items()} } from {data}", flush=True)
    tracking = benchmark_tracking(args.tracking_uri)
    tags = {"wms/benchmark": "train_benchmark.py", "wms/data": str(data)}
    with tracking.training_run(settings.as_params(), tags, name=f"benchmark {args.preset} {data.name}") as logged:
        report, result = measure(splits, settings, data, name, device, args.checkpoints, logged)
        mlflow.log_metrics({f"test_{key}": value for key, value in report["test"].items()})
        mlflow.log_metrics(
            {key: value for key, value in report.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}
        )
    print(json.dumps(report), flush=True)
    print(f"logged to MLflow: {tracking.tracking_uri}, experiment {BENCHMARK_EXPERIMENT}, run {logged.run_id}", flush=True)
    if args.weights:  # as a checkpoint's best weights: evaluate_checkpoint.py and initial_weights read it
        progress = {"best_state": result.model.state_dict(), "epoch": len(result.history), "best_epoch": result.best_epoch}
        best_val = max((epoch.get("val_iou", 0.0) for epoch in result.history), default=float("nan"))
        torch.save({"settings": settings.as_params(), "progress": progress | {"best_iou": best_val}}, args.weights)
    if args.output:
        args.output.write_text(json.dumps({**report, "history": result.history}, indent=1))


def measure(
    splits, settings: TrainSettings, data: Path, name: str, device, checkpoints: Path | None, logged
) -> tuple[dict, object]:
    """Train with `settings`, time it and its inference; the report and the training's result."""
    started = time.perf_counter()

    def on_epoch(epoch: int, metrics: dict) -> None:
        print(f"epoch {epoch} {time.perf_counter() - started:.0f}s {metrics}", flush=True)
        logged.log_epoch(epoch, metrics)

    result = train(splits, settings, on_epoch=on_epoch, checkpoints=checkpoints, on_note=print)
    epochs_run = len(result.history) - result.resumed_at_epoch
    pass_seconds = sum(epoch.get("train_pass_seconds", 0.0) for epoch in result.history[result.resumed_at_epoch :])
    step_images_per_s = epochs_run * len(splits["train"]) / pass_seconds if pass_seconds else None
    flops = mean_training_flops(settings)
    achieved = flops * step_images_per_s / 1e12 if step_images_per_s else None
    peak = peak_tflops(name)
    single = time_inference(result.model, settings.image_size, device, 1, 30)
    batched = time_inference(result.model, settings.image_size, device, 16, 10)
    report = {
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": name,
        "data": str(data),
        "settings": settings.as_params(),
        "test": result.test_scores.as_dict(),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "training": result.notes,
        "train_seconds": round(result.seconds, 1),
        "train_images_per_s": round(epochs_run * len(splits["train"]) / result.seconds, 2) if epochs_run else None,
        "train_step_images_per_s": round(step_images_per_s, 2) if step_images_per_s else None,
        "train_gflops_per_image": round(flops / 1e9, 2),
        "achieved_tflops": round(achieved, 3) if achieved else None,
        "share_of_bf16_peak": round(achieved / peak, 4) if achieved and peak else None,
        "batch1_p50_ms": round(float(np.percentile(single, 50)) * 1000, 2),
        "batch1_p95_ms": round(float(np.percentile(single, 95)) * 1000, 2),
        "batch16_images_per_s": round(16 / float(np.median(batched)), 1),
    }
    return report, result


if __name__ == "__main__":
    main()
