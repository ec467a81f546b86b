#!/usr/bin/env bash
# The CPU recipe for the real photos, in one command: the `full` preset with a lighter encoder for 60 epochs, then
# gentler one-cycle schedules, each starting from the best averaged weights of the cycle before (`--initial-weights`).
#   bash benchmarks/cpu_cycles.sh [DATA]        DATA defaults to ../shared/data/water-meters
# Each cycle writes benchmarks/results/$NAME-cycleN.json (every epoch, the test scores of its best weights) and keeps
# its checkpoints in .wms/bench-checkpoints/$NAME-cycleN; a cycle whose JSON exists is skipped, so a killed run goes on
# where it stopped. CYCLES (epochs:peak learning rate:input side, one word a cycle) sets the schedule; the default is the
# README's best CPU run: progressive resizing, 60 epochs at 128², then 35 and 30 at 192². SEED (default 0) sets the
# training seed of every cycle.
# The whole script is one function read before it runs, so editing this file during a run cannot change that run.
set -euo pipefail

main() {
  DATA=${1:-../shared/data/water-meters}
  NAME=${NAME:-cpu-real-mobilenet_v2}
  CYCLES=${CYCLES:-"60:0.002:128 35:0.001:192 30:0.0005:192"}
  PYTHON=${PYTHON:-.venv/bin/python}
  SEED=${SEED:-0}
  export PYTHONUNBUFFERED=1
  for step in $CYCLES; do
    if ! [[ $step =~ ^[0-9]+:[0-9.eE-]+:[0-9]+$ ]]; then
      echo "cpu_cycles.sh: cycle '$step' is not epochs:peak learning rate:input side (for instance 30:0.0005:192)" >&2
      exit 2
    fi
  done
  previous=""
  cycle=0
  for step in $CYCLES; do
    cycle=$((cycle + 1))
    IFS=: read -r epochs rate size <<< "$step"
    checkpoints=.wms/bench-checkpoints/$NAME-cycle$cycle
    output=benchmarks/results/$NAME-cycle$cycle.json
    start=()
    if [ -n "$previous" ]; then start=(--initial-weights "$previous/last.pt"); fi
    if [ -f "$output" ]; then
      echo "cycle $cycle: $output exists, skipped"
    else
      echo "cycle $cycle: $epochs epochs, peak learning rate $rate, ${size}², seed $SEED, from ${previous:-random weights} ($(date -u +%H:%M))"
      "$PYTHON" benchmarks/train_benchmark.py "$DATA" --preset full --encoder mobilenet_v2 --image-size "$size" \
        --batch-size 8 --threads 2 --workers 0 --epochs "$epochs" --learning-rate "$rate" --seed "$SEED" "${start[@]}" \
        --checkpoints "$checkpoints" --output "$output"
    fi
    previous=$checkpoints
  done
}

main "$@"
exit
