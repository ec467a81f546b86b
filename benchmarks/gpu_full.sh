#!/usr/bin/env bash
# The `full` preset on the lent GPU machine (the `device` tool's `run`), in one call. Prepare here first:
#   pip download --no-deps --python-version 3.12 --only-binary=:all: segmentation-models-pytorch==0.6.0 -d .whl
#   .venv/bin/python benchmarks/prepare_real_subset.py ../shared/data/water-meters .gpu/water-meters --long-side 720
# then run:  MINUTES=6 bash benchmarks/gpu_full.sh   with carry [".whl", ".gpu"]; reports land in $OUT:
#   step.jsonl      the training step alone (step_benchmark.py), eager then compiled when time is left
#   gpu-full.json   the training run: test scores, images/s, share of the bf16 peak, inference timings, history
#   weights.*       the best weights in float16 parts (join them with pack_weights.py join)
# The GPU image has torch, timm, SciPy and Pillow but not segmentation-models-pytorch, and no network: it comes as
# a wheel. The run is sized to the device time: as many epochs as fit in MINUTES (timed on two first).
set -euo pipefail
OUT=${OUT:-benchmarks/results}
MINUTES=${MINUTES:-6}
DEADLINE=${DEADLINE:-570}  # seconds after the start by which everything must have ended
python -m pip install --quiet --no-deps --no-index --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch, timm, PIL, numpy, scipy; print('torch', torch.__version__, 'timm', timm.__version__, 'pillow', PIL.__version__, 'numpy', numpy.__version__)"
python benchmarks/step_benchmark.py --encoder resnet34 --image-size 384 --batch-sizes 16 64 | tee "$OUT/step.jsonl"
python benchmarks/train_benchmark.py .gpu/water-meters --splits .gpu/water-meters/splits.json --preset full \
  --workers 12 --minutes "$MINUTES" --weights /tmp/best.pt --output "$OUT/gpu-full.json" "$@"
python benchmarks/pack_weights.py pack /tmp/best.pt "$OUT"
left=$((DEADLINE - SECONDS))
echo "$left s left for the compiled step"
if [ "$left" -gt 60 ]; then
  timeout "$left" python benchmarks/step_benchmark.py --encoder resnet34 --image-size 384 --batch-sizes 16 64 --compiled \
    | tee -a "$OUT/step.jsonl" || echo "compiled step did not finish in $left s"
fi
