#!/usr/bin/env bash
# The `full` preset on the lent GPU machine (the `device` tool's `run`), in one call. Prepare here first:
#   pip download --no-deps --python-version 3.12 --only-binary=:all: segmentation-models-pytorch==0.6.0 -d .whl
#   .venv/bin/python benchmarks/prepare_real_subset.py ../shared/data/water-meters .gpu/water-meters --long-side 800
# then run:  bash benchmarks/gpu_full.sh   with carry [".whl", ".gpu"]; reports land in $OUT.
# The GPU image has torch, timm, onnx, onnxruntime, SciPy and Pillow but not segmentation-models-pytorch, and no
# network: it comes as a wheel. Extra arguments go to train_benchmark.py (e.g. --epochs 60).
set -euo pipefail
OUT=${OUT:-benchmarks/results}
python -m pip install --quiet --no-deps --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python benchmarks/train_benchmark.py .gpu/water-meters --splits .gpu/water-meters/splits.json --preset full \
  --checkpoints "$OUT/checkpoints" --output "$OUT/gpu-full.json" "$@"
python benchmarks/evaluate_checkpoint.py .gpu/water-meters "$OUT/checkpoints/last.pt" --splits .gpu/water-meters/splits.json \
  --threads 8 --output "$OUT/gpu-full-variants.json"
