"""Eight clients for a minute against a local TorchServe (front door included), half of their requests broken: no
answer may be a 5xx. Prints the throughput, p50/p95/p99 of the good and of the broken requests, every status seen,
and the serving processes' resident memory at the start and at the end.

    python benchmarks/mixed_load.py --onnx MODEL.onnx --output benchmarks/results/mixed-load.json
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from emit import emit  # noqa: E402

from tests.photos import png_bomb, png_header_only  # noqa: E402

MODEL = "wms-unet"
REAL_PHOTOS = PROJECT.parent / "shared" / "data" / "water-meters" / "images"


def broken_requests(photo: bytes) -> list[tuple[str, bytes, str]]:
    """(what, body, content type): one of each kind of bad request the API refuses (`photo` is cut short for one)."""
    from PIL import Image

    tiny = io.BytesIO()
    Image.new("RGB", (1, 1)).save(tiny, format="PNG")
    return [
        ("empty body", b"", "image/jpeg"),
        ("text", b"hello, this is text", "application/octet-stream"),
        ("random bytes", np.random.default_rng(1).bytes(20000), "application/octet-stream"),
        ("truncated JPEG", photo[: len(photo) // 2], "image/jpeg"),
        ("1x1 image", tiny.getvalue(), "image/png"),
        ("header of a 20000x20000 PNG", png_header_only(20000, 20000), "image/png"),
        ("1-bit PNG bomb of 7071x7071", png_bomb(7071, 7071), "image/png"),
        ("text content type", b"a photo, honestly", "text/plain"),
        ("a form", b"photo=x", "application/x-www-form-urlencoded"),
    ]


def good_photos(count: int = 8) -> list[bytes]:
    if REAL_PHOTOS.is_dir():
        return [path.read_bytes() for path in sorted(REAL_PHOTOS.iterdir())[:count]]
    from PIL import Image

    rng = np.random.default_rng(0)
    photos = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (1333, 1000, 3), dtype=np.uint8)).save(buffer, format="JPEG")
        photos.append(buffer.getvalue())
    return photos


def run_load(host: str, port: int, clients: int, seconds: float, good: list[bytes], broken: list, model: str = MODEL) -> dict:
    """`clients` threads, each alternating a good photo and a broken request until `seconds` have passed."""
    records, lock, deadline = [], threading.Lock(), time.monotonic() + seconds

    def client(number: int) -> None:
        sent = number
        connection = http.client.HTTPConnection(host, port, timeout=120)
        while time.monotonic() < deadline:
            if sent % 2:
                kind, body, content_type = "broken", *broken[(sent // 2) % len(broken)][1:]
            else:
                kind, body, content_type = "good", good[(sent // 2) % len(good)], "image/jpeg"
            started = time.perf_counter()
            try:
                connection.request("POST", f"/predictions/{model}", body=body, headers={"Content-Type": content_type})
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0  # the connection broke: counted, never a success
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=120)
            with lock:
                records.append((kind, status, time.perf_counter() - started))
            sent += 1
        connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {
        "requests": len(records),
        "seconds": round(elapsed, 1),
        "requests_per_second": round(len(records) / elapsed, 1),
        "statuses": {str(status): count for status, count in sorted(Counter(status for _, status, _ in records).items())},
        "server_errors": sum(1 for _, status, _ in records if status >= 500 or status == 0),
        **{f"{kind}_ms": percentiles([seconds for k, _, seconds in records if k == kind]) for kind in ("good", "broken")},
    }


def percentiles(seconds: list[float]) -> dict[str, float]:
    values = np.array(seconds or [0.0]) * 1000
    return {name: round(float(np.percentile(values, q)), 1) for name, q in (("p50", 50), ("p95", 95), ("p99", 99))}


def main() -> None:
    from tests.conftest import free_port, free_port_block
    from wms.serving.torchserve import LocalTorchServe, build_archive

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, required=True, help="the model to serve")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    good = good_photos()
    broken = broken_requests(good[0])
    with tempfile.TemporaryDirectory() as scratch:
        server = replace(LocalTorchServe.on_port(Path(scratch) / "home", free_port_block(8)), worker_port=free_port())
        server.start(build_archive(args.onnx, MODEL, "1", server.model_store))
        try:
            before = server.resident_bytes()
            load = run_load(server.host, server.inference_port, args.clients, args.seconds, good, broken)
            after = server.resident_bytes()
        finally:
            server.stop()
    emit(
        {
            "measured": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{os.cpu_count()} CPU cores; TorchServe with one worker and nginx on loopback",
            "model": str(args.onnx),
            "clients": args.clients,
            "good_photos": "real photos" if REAL_PHOTOS.is_dir() else "synthetic 1000x1333 JPEGs",
            "broken_kinds": [kind for kind, _, _ in broken],
            **load,
            "resident_mb_start": round(before / 2**20),
            "resident_mb_end": round(after / 2**20),
        },
        args.output,
    )


if __name__ == "__main__":
    main()
