"""Photos that are cheap to send and dear to decode, eight at once, against a running local TorchServe: how much the
serving processes grow and how long a normal photo sent half a second later waits. The serving code of this
checkout and of a baseline revision are measured one after the other in the same run.

    python benchmarks/decode_burst.py --onnx MODEL.onnx --baseline REV --output benchmarks/results/decode-burst.json
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from emit import emit  # noqa: E402

from tests.photos import png_bomb  # noqa: E402

REAL_PHOTOS = PROJECT.parent / "shared" / "data" / "water-meters" / "images"
BURST = 8
MODEL = "wms-unet"


def start_server(code: Path, home: Path, port: int, onnx: Path) -> None:
    """Start TorchServe from the serving code under `code` (a checkout): its handler and wms modules, in a process
    whose imports come from there (the server outlives it)."""
    script = (
        "import sys; from pathlib import Path; from dataclasses import replace;"
        "from wms.serving.torchserve import LocalTorchServe, build_archive;"
        f"server = replace(LocalTorchServe.on_port(Path({str(home)!r}), {port}), worker_port={port + 100});"
        f"server.start(build_archive(Path({str(onnx)!r}), {MODEL!r}, '1', server.model_store))"
    )
    environment = {**os.environ, "PYTHONPATH": str(code)}
    subprocess.run([sys.executable, "-c", script], cwd=code, env=environment, check=True)


def stop_server(code: Path, home: Path, port: int) -> None:
    script = (
        "from pathlib import Path; from dataclasses import replace; from wms.serving.torchserve import LocalTorchServe;"
        f"replace(LocalTorchServe.on_port(Path({str(home)!r}), {port}), worker_port={port + 100}).stop()"
    )
    subprocess.run([sys.executable, "-c", script], cwd=code, env={**os.environ, "PYTHONPATH": str(code)}, check=True)


def resident_mb(home: Path, port: int) -> float:
    from wms.serving.torchserve import LocalTorchServe

    return LocalTorchServe.on_port(home, port).resident_bytes() / 2**20


def post(port: int, body: bytes, content_type: str) -> tuple[int, float]:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    connection.request("POST", f"/predictions/{MODEL}", body=body, headers={"Content-Type": content_type})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, time.perf_counter() - started


def burst(home: Path, port: int, body: bytes, content_type: str, normal: bytes) -> dict:
    """BURST copies of `body` at once, then a normal photo 0.5 s later; memory sampled every 50 ms throughout."""
    before = resident_mb(home, port)
    samples, done = [before], threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(resident_mb(home, port))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    with ThreadPoolExecutor(BURST) as pool:
        sent = [pool.submit(post, port, body, content_type) for _ in range(BURST)]
        time.sleep(0.5)
        normal_status, normal_seconds = post(port, normal, "image/jpeg")
        answers = [future.result() for future in sent]
    done.set()
    sampler.join()
    return {
        "statuses": dict(Counter(status for status, _ in answers)),
        "burst_seconds_max": round(max(seconds for _, seconds in answers), 2),
        "normal_photo": {"status": normal_status, "seconds": round(normal_seconds, 2)},
        "resident_mb_before": round(before),
        "resident_mb_peak": round(max(samples)),
        "growth_mb_peak": round(max(samples) - before),
        "resident_mb_after": round(resident_mb(home, port)),
    }


def attacks() -> dict[str, tuple[bytes, str]]:
    from PIL import Image

    jpeg = io.BytesIO()
    Image.new("L", (7071, 7071), 128).save(jpeg, format="JPEG", quality=50)
    return {
        "1-bit PNG, 7071x7071 (6 KB, 50 megapixels)": (png_bomb(7071, 7071), "image/png"),
        "1-bit PNG, 4000x4000 (16 megapixels)": (png_bomb(4000, 4000), "image/png"),
        f"grey JPEG, 7071x7071 ({len(jpeg.getvalue()) // 1024} KB, 50 megapixels)": (jpeg.getvalue(), "image/jpeg"),
    }


def normal_photo() -> tuple[bytes, str]:
    if REAL_PHOTOS.is_dir():
        first = sorted(REAL_PHOTOS.iterdir())[0]
        return first.read_bytes(), f"{first.name} (a real photo)"
    from PIL import Image

    photo = io.BytesIO()
    Image.new("RGB", (1000, 1333), (90, 100, 110)).save(photo, format="JPEG")
    return photo.getvalue(), "a synthetic 1000x1333 JPEG"


def measure(code: Path, onnx: Path, port: int, scratch: Path, normal: bytes) -> dict:
    home = scratch / "home"
    start_server(code, home, port, onnx)
    try:
        post(port, normal, "image/jpeg")  # warm: the first answer loads what a worker loads once
        return {name: burst(home, port, body, kind, normal) for name, (body, kind) in attacks().items()}
    finally:
        stop_server(code, home, port)


def checkout(revision: str, into: Path) -> Path:
    subprocess.run(["git", "-C", str(PROJECT), "worktree", "add", "--detach", str(into), revision], check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, required=True, help="the model to serve (a trained one: its looks decide)")
    parser.add_argument("--baseline", help="a revision whose serving code is measured first, in the same run")
    parser.add_argument("--port", type=int, default=18180)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    normal, normal_name = normal_photo()
    result = {
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPU cores; TorchServe with one worker and nginx on loopback",
        "model": str(args.onnx),
        "burst": f"{BURST} requests at once, then {normal_name} 0.5 s later; resident memory of TorchServe, its workers "
        "and nginx, sampled every 50 ms",
    }
    with tempfile.TemporaryDirectory() as scratch:
        if args.baseline:
            baseline = checkout(args.baseline, Path(scratch) / "baseline")
            try:
                result[f"baseline {args.baseline}"] = measure(baseline, args.onnx, args.port, Path(scratch) / "b", normal)
            finally:
                subprocess.run(["git", "-C", str(PROJECT), "worktree", "remove", "--force", str(baseline)], check=True)
        head = subprocess.run(["git", "-C", str(PROJECT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        result[f"this checkout ({head.stdout.strip()} and its changes)"] = measure(
            PROJECT, args.onnx, args.port, Path(scratch) / "c", normal
        )
    emit(result, args.output)


if __name__ == "__main__":
    main()
