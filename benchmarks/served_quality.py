"""Score the served model over HTTP on a split the training never learned from, as an API consumer meets it.

Each photo of the split goes to the inference URL as the request body; the mask in the answer is compared with the
true mask at the photo's own size. Prints and writes the scores, the model version that answered and the latency.

    python benchmarks/served_quality.py ../shared/data/water-meters http://127.0.0.1:8080/predictions/wms-unet \\
        --split test --output benchmarks/results/served-cpu-real-test.json
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import time
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
from emit import emit
from PIL import Image
from train_benchmark import load_splits

from wms.inference.imaging import read_mask
from wms.inference.scores import ScoreAccumulator


def ask(url: str, photo: bytes, timeout: float = 60.0) -> dict:
    request = urllib.request.Request(url, data=photo, method="POST", headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def answered_mask(answer: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["mask_png_base64"])))) > 127


def score_served(url: str, pairs) -> dict:
    """Scores of the served masks against the true ones, the versions that answered, and the latency per request."""
    accumulator, versions, seconds = ScoreAccumulator.empty(), Counter(), []
    for pair in pairs:
        started = time.perf_counter()
        answer = ask(url, pair.image.read_bytes())
        seconds.append(time.perf_counter() - started)
        accumulator.add(answered_mask(answer), read_mask(pair.mask))
        versions[str(answer.get("model_version"))] += 1
    latency = sorted(seconds)
    return {
        "scores": {key: round(value, 4) for key, value in accumulator.scores().as_dict().items()},
        "model_versions": dict(versions),
        "latency_ms": {
            "p50": round(1000 * statistics.median(latency), 1),
            "p95": round(1000 * latency[int(0.95 * (len(latency) - 1))], 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="Data folder in the Kaggle layout")
    parser.add_argument("url", help="Inference URL (what `wms run` prints after 'Inference POST')")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--note", default="", help="Where and how it ran")
    parser.add_argument("--output", type=Path, help="JSON file to write (printed either way)")
    args = parser.parse_args()
    pairs = load_splits(args.data, None)[args.split]
    summary = {"url": args.url, "split": args.split, "photos": len(pairs), **score_served(args.url, pairs), "note": args.note}
    emit(summary, args.output)


if __name__ == "__main__":
    main()
