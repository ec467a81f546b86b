"""Time the U-Net's training step alone (forward, backward, AdamW) on batches already on the device.

This is the model's own speed, with no data pipeline and no validation: images per second, achieved TFLOP/s
(FLOPs counted by PyTorch's FlopCounterMode) and, on a GPU, the share of its dense bf16 peak. On CUDA the step
runs as training does (bf16 autocast, channels_last; cuDNN's autotuner on), eagerly or, with --compiled, through torch.compile.

    python benchmarks/step_benchmark.py --encoder resnet34 --image-size 384 --batch-sizes 16 64 [--compiled]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from train_benchmark import peak_tflops, training_flops_per_image

from wms.training.losses import loss_by_name
from wms.training.model import build_unet


def time_steps(model, optimizer, loss_function, batch: int, image_size: int, device: torch.device, steps: int) -> float:
    """Seconds per training step, the median over `steps` after warm-up steps."""
    images = torch.randn(batch, 3, image_size, image_size, device=device).contiguous(memory_format=torch.channels_last)
    masks = (torch.rand(batch, 1, image_size, image_size, device=device) > 0.97).float()
    timings = []
    for index in range(steps + 5):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(images)
        loss_function(logits.float(), masks).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if index >= 5:
            timings.append(time.perf_counter() - started)
    return sorted(timings)[len(timings) // 2]


def measure(encoder: str, image_size: int, batch: int, compiled: bool, steps: int) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_unet(encoder).to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    runnable = torch.compile(model) if compiled else model
    started = time.perf_counter()
    seconds = time_steps(runnable, optimizer, loss_by_name("bce_dice"), batch, image_size, device, steps)
    images_per_s = batch / seconds
    achieved = training_flops_per_image(encoder, image_size) * images_per_s / 1e12
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = peak_tflops(name)
    return {
        "device": name,
        "encoder": encoder,
        "image_size": image_size,
        "batch": batch,
        "compiled": compiled,
        "step_ms": round(seconds * 1000, 2),
        "images_per_s": round(images_per_s, 1),
        "achieved_tflops": round(achieved, 2),
        "share_of_bf16_peak": round(achieved / peak, 4) if peak else None,
        "wall_seconds_with_warmup": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="resnet34")
    parser.add_argument("--image-size", type=int, default=384)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compiled", action="store_true", help="time the step through torch.compile, not eagerly")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    for batch in args.batch_sizes:
        print(json.dumps(measure(args.encoder, args.image_size, batch, args.compiled, args.steps)), flush=True)


if __name__ == "__main__":
    main()
