"""Load test on 127.0.0.1: the WMS handler (ONNX Runtime) against TorchServe's eager-PyTorch handler, same weights.

Both are served by a real TorchServe, one after the other on the same machine, with the same model archive
settings (dynamic batching included), and answer the same 512x512 JPEG photos with the same masks. For each
concurrency, a pool of client threads sends requests until --requests are answered or --seconds have passed;
the script prints throughput, p50/p95/p99 latency, the ratio of the two, and the share of the WMS handler's
request time that ONNX Runtime itself takes (from the handler's wms_model_seconds metric).

    .venv/bin/python benchmarks/serving_benchmark.py --checkpoint .wms/bench-checkpoints/cpu-real/last.pt \\
        --output benchmarks/results/cpu-serving.json

Without --checkpoint the U-Net has untrained weights (mobilenet_v2, 192): fine for timing the stack, though an
untrained model may find no window and so skip the zoomed look.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import free_port_block
from wms.data.synthetic import SyntheticSpec, generate_dataset
from wms.serving.torchserve import BatchSettings, LocalTorchServe, build_archive
from wms.training.export import export_onnx
from wms.training.model import build_unet, unet_for
from wms.training.settings import TrainSettings

BENCHMARKS = Path(__file__).resolve().parent
REAL_DATA = BENCHMARKS.parent.parent / "shared" / "data" / "water-meters"
MODEL_FILE = """import segmentation_models_pytorch as smp


class WindowUnet(smp.Unet):
    def __init__(self):
        super().__init__(encoder_name={encoder!r}, encoder_weights=None, in_channels=3, classes=1)
"""


@dataclass
class Phase:
    concurrency: int
    answered: int
    failed: int
    seconds: float
    latencies_ms: list[float]

    def summary(self) -> dict[str, float]:
        latencies = np.array(self.latencies_ms)
        return {
            "concurrency": self.concurrency,
            "requests": self.answered,
            "failed": self.failed,
            "throughput_per_s": round(self.answered / self.seconds, 2),
            "p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p95_ms": round(float(np.percentile(latencies, 95)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1),
            "mean_ms": round(float(latencies.mean()), 1),
        }


def load_model(checkpoint: Path | None, encoder: str, image_size: int) -> tuple[torch.nn.Module, str, int]:
    if checkpoint is None:
        torch.manual_seed(0)
        return build_unet(encoder).eval(), encoder, image_size
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    settings = TrainSettings.from_params(state["settings"])
    model = unet_for(settings)
    model.load_state_dict(state["progress"]["best_state"] or state["average"])
    return model.eval(), settings.encoder, settings.image_size


def photos_512(count: int, scratch: Path) -> list[bytes]:
    """Square 512x512 JPEGs: the real photos (centre crop) when the folder is there, else synthetic ones."""
    folder = REAL_DATA / "images"
    if not folder.is_dir():
        generate_dataset(scratch / "synthetic", SyntheticSpec(count=count, seed=3))
        folder = scratch / "synthetic" / "images"
    encoded = []
    for path in sorted(folder.iterdir())[:count]:
        photo = Image.open(path).convert("RGB")
        side = min(photo.size)
        left, top = (photo.width - side) // 2, (photo.height - side) // 2
        square = photo.crop((left, top, left + side, top + side)).resize((512, 512), Image.BILINEAR)
        buffer = io.BytesIO()
        square.save(buffer, format="JPEG", quality=90)
        encoded.append(buffer.getvalue())
    return encoded


def eager_archive(model: torch.nn.Module, encoder: str, image_size: int, batching: BatchSettings, store: Path) -> Path:
    """The baseline's archive: model file, state dict and the eager handler, with the same batching settings."""
    work = store.parent / "eager-work"
    work.mkdir(parents=True, exist_ok=True)
    (work / "unet_model.py").write_text(MODEL_FILE.format(encoder=encoder))
    torch.save(model.state_dict(), work / "model.pt")
    (work / "model-config.yaml").write_text(batching.model_config() + f"handler:\n  image_size: {image_size}\n")
    store.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            str(Path(sys.executable).with_name("torch-model-archiver")),
            "--model-name", "eager",
            "--version", "1",
            "--model-file", str(work / "unet_model.py"),
            "--serialized-file", str(work / "model.pt"),
            "--handler", str(BENCHMARKS / "eager_handler.py"),
            "--config-file", str(work / "model-config.yaml"),
            "--export-path", str(store),
            "--force",
        ],
        check=True,
    )  # fmt: skip
    return store / "eager.mar"


def load(server: LocalTorchServe, model: str, photos: list[bytes], concurrency: int, requests: int, seconds: float) -> Phase:
    """Send photos from `concurrency` threads until `requests` are answered or `seconds` have passed."""
    latencies, failures, lock = [], [0], threading.Lock()
    deadline = time.perf_counter() + seconds
    counter = iter(range(requests))

    def client() -> None:
        connection = http.client.HTTPConnection(server.host, server.inference_port, timeout=120)
        for index in counter:
            if time.perf_counter() > deadline:
                break
            started = time.perf_counter()
            connection.request("POST", f"/predictions/{model}", photos[index % len(photos)], {"Content-Type": "image/jpeg"})
            response = connection.getresponse()
            response.read()
            with lock:
                if response.status == 200:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    failures[0] += 1
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Phase(concurrency, len(latencies), failures[0], time.perf_counter() - started, latencies)


def handler_seconds(server: LocalTorchServe) -> dict[str, float]:
    """The WMS handler's time in ONNX Runtime so far."""
    import urllib.request

    with urllib.request.urlopen(server.handler_metrics_url) as response:
        lines = response.read().decode().splitlines()
    sums = {"wms_model_seconds_sum": 0.0}
    for line in lines:
        name = line.split("{")[0]
        if name in sums:
            sums[name] += float(line.rsplit(" ", 1)[1])
    return sums


def measure(server: LocalTorchServe, archive: Path, model: str, photos: list[bytes], args) -> list[dict]:
    server.start(archive)
    try:
        load(server, model, photos, 2, 10, 60)  # warm up the worker and the JIT-free caches
        results = []
        for concurrency in args.concurrency:
            before = handler_seconds(server) if model != "eager" else None
            phase = load(server, model, photos, concurrency, args.requests, args.seconds)
            summary = phase.summary()
            if before is not None:
                after = handler_seconds(server)
                model_seconds = after["wms_model_seconds_sum"] - before["wms_model_seconds_sum"]
                summary["model_ms_per_request"] = round(model_seconds * 1000 / phase.answered, 1)
                summary["model_share_of_latency"] = round(summary["model_ms_per_request"] / summary["mean_ms"], 3)
                summary["model_busy_share"] = round(model_seconds / phase.seconds, 3)
            print(f"{model:>8}  {json.dumps(summary)}", flush=True)
            results.append(summary)
        return results
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="a training checkpoint (last.pt): its best weights are served")
    parser.add_argument("--encoder", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=192)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=120, help="per concurrency and server")
    parser.add_argument("--seconds", type=float, default=60.0, help="per concurrency and server, at most")
    parser.add_argument("--batch-size", type=int, default=BatchSettings().batch_size)
    parser.add_argument("--max-batch-delay-ms", type=int, default=BatchSettings().max_batch_delay_ms)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    model, encoder, image_size = load_model(args.checkpoint, args.encoder, args.image_size)
    batching = BatchSettings(batch_size=args.batch_size, max_batch_delay_ms=args.max_batch_delay_ms)
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        photos = photos_512(32, scratch)
        onnx_path = export_onnx(model, image_size, scratch / "model.onnx", {})
        ours = LocalTorchServe.on_port(scratch / "wms", free_port_block(7))
        baseline = replace(LocalTorchServe.on_port(scratch / "eager", free_port_block(7)), front_door=False)
        ours_archive = build_archive(onnx_path, "wms", "1", ours.model_store, batching)
        eager = eager_archive(model, encoder, image_size, batching, baseline.model_store)
        print(f"{encoder} {image_size}² on 512x512 JPEGs; batching {batching}; {torch.get_num_threads()} CPU threads")
        report = {
            "machine": f"{torch.get_num_threads()} CPU threads",
            "model": {"encoder": encoder, "image_size": image_size, "checkpoint": str(args.checkpoint or "untrained")},
            "batching": {"batch_size": batching.batch_size, "max_batch_delay_ms": batching.max_batch_delay_ms},
            "wms_onnxruntime": measure(ours, ours_archive, "wms", photos, args),
            "torchserve_eager": measure(baseline, eager, "eager", photos, args),
        }
    report["ratios"] = [
        {
            "concurrency": mine["concurrency"],
            "throughput": round(mine["throughput_per_s"] / theirs["throughput_per_s"], 2),
            "p99": round(mine["p99_ms"] / theirs["p99_ms"], 2),
        }
        for mine, theirs in zip(report["wms_onnxruntime"], report["torchserve_eager"], strict=True)
    ]
    for ratio in report["ratios"]:
        print(f"concurrency {ratio['concurrency']:>2}: throughput x{ratio['throughput']}, p99 x{ratio['p99']} (WMS / eager)")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
