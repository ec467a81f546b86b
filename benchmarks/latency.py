"""Sequential request latency of a TorchServe prediction endpoint on this machine (bounded in count and time).

python benchmarks/latency.py http://127.0.0.1:8080/predictions/wms-unet photo.jpg --requests 30
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from pathlib import Path

import numpy as np

TIME_LIMIT_S = 120.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("photo", type=Path)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    if not args.url.startswith(("http://127.", "http://localhost")):
        raise SystemExit("only endpoints on this machine (127.0.0.0/8, localhost) are measured")
    body = args.photo.read_bytes()
    timings, deadline = [], time.monotonic() + TIME_LIMIT_S
    for _ in range(args.requests + 3):
        request = urllib.request.Request(args.url, data=body, headers={"Content-Type": "application/octet-stream"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        timings.append(time.perf_counter() - started)
        if time.monotonic() > deadline:
            break
    measured = np.array(timings[3:]) * 1000  # the first requests warm the worker up
    print(
        json.dumps(
            {
                "photo": args.photo.name,
                "bytes": len(body),
                "requests": len(measured),
                "p50_ms": round(float(np.percentile(measured, 50)), 1),
                "p95_ms": round(float(np.percentile(measured, 95)), 1),
                "mean_ms": round(float(measured.mean()), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
