"""Summarise a training that ran through the platform: its MLflow run cycle by cycle, and the version it became.

Reads the local profile's MLflow store (or --tracking-uri) and writes JSON: minutes and training-pass seconds per
cycle, the best val IoU of each cycle, the test scores, the registered version with its aliases and gate outcomes.

    python benchmarks/platform_run.py --output benchmarks/results/platform-cpu-real.json   # the newest version
    python benchmarks/platform_run.py --version 3 --note "CPU machine, 2 cores, nothing else running"
"""

from __future__ import annotations

import argparse
import statistics
from datetime import UTC, datetime
from pathlib import Path

from emit import emit

from wms.core.local_state import MODEL_NAME, StateLayout, default_home
from wms.registry.gates import gate_outcomes
from wms.registry.model_registry import ModelRegistry

EPOCH_METRICS = ("train_loss", "train_pass_seconds", "val_iou", "val_dice", "cycle")


def epoch_rows(client, run_id: str) -> list[dict]:
    """One row per epoch, in order: its metrics, and when it was logged (ms since the epoch of time)."""
    rows: dict[int, dict] = {}
    for key in EPOCH_METRICS:
        for metric in client.get_metric_history(run_id, key):
            row = rows.setdefault(metric.step, {"epoch": metric.step, "logged_ms": 0})
            row[key] = metric.value
            row["logged_ms"] = max(row["logged_ms"], metric.timestamp)
    return [rows[step] for step in sorted(rows)]


def per_cycle(rows: list[dict], started_ms: int) -> list[dict]:
    """Each cycle's epochs, wall-clock minutes (from the end of the cycle before), pass times and best val IoU."""
    cycles: dict[int, list[dict]] = {}
    for row in rows:
        cycles.setdefault(int(row.get("cycle", 1)), []).append(row)
    summaries, since = [], started_ms
    for number, epochs in sorted(cycles.items()):
        passes = [row["train_pass_seconds"] for row in epochs if "train_pass_seconds" in row]
        scored = [row for row in epochs if "val_iou" in row]
        best = max(scored, key=lambda row: row["val_iou"]) if scored else None
        summaries.append(
            {
                "cycle": number,
                "epochs": [epochs[0]["epoch"], epochs[-1]["epoch"]],
                "minutes": round((epochs[-1]["logged_ms"] - since) / 60_000, 1),
                "train_pass_seconds": _spread(passes),
                "best_val_iou": round(best["val_iou"], 4) if best else None,
                "best_epoch": best["epoch"] if best else None,
            }
        )
        since = epochs[-1]["logged_ms"]
    return summaries


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1), "max": round(max(values), 1)}


def summarise(registry: ModelRegistry, version: str) -> dict:
    """The version's run, cycle by cycle, its test scores and where it stands in the registry."""
    client = registry.client
    model_version = client.get_model_version(registry.model_name, version)
    run = client.get_run(model_version.run_id)
    metrics, tags = run.data.metrics, run.data.tags
    return {
        "model": registry.model_name,
        "version": str(version),
        "aliases": list(model_version.aliases),
        "gates": gate_outcomes(model_version.tags),
        "run_id": run.info.run_id,
        "run_status": run.info.status,
        "started": _iso(run.info.start_time),
        "ended": _iso(run.info.end_time),
        "run_minutes": round((run.info.end_time - run.info.start_time) / 60_000, 1),
        "preset": tags.get("preset"),
        "data_version": tags.get("data_version"),
        "git_sha": tags.get("git_sha"),
        "settings": {key: run.data.params[key] for key in ("encoder", "cycles", "batch_size", "seed", "threads")},
        "best_epoch": int(metrics["best_epoch"]),
        "epochs_run": int(metrics["epochs_run"]),
        "resumed_at_epoch": int(metrics.get("resumed_at_epoch", 0)),
        "train_minutes": round(metrics["train_seconds"] / 60, 1),
        "test": {key.removeprefix("test_"): round(value, 4) for key, value in sorted(metrics.items()) if key.startswith("test_")},
        "cycles": per_cycle(epoch_rows(client, run.info.run_id), run.info.start_time),
    }


def _iso(ms: int | None) -> str | None:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds") if ms else None


def newest_version(registry: ModelRegistry) -> str:
    versions = registry.client.search_model_versions(f"name = '{registry.model_name}'")
    if not versions:
        raise SystemExit(f"no version of {registry.model_name} in {registry.tracking_uri}: run `wms run` first")
    return str(max(int(version.version) for version in versions))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: the local profile's store under $WMS_HOME or .wms)")
    parser.add_argument("--model-name", default=MODEL_NAME)
    parser.add_argument("--version", help="Registered version to summarise (default: the newest)")
    parser.add_argument("--note", default="", help="Where and how it ran (the machine, what else ran beside it)")
    parser.add_argument("--output", type=Path, help="JSON file to write (printed either way)")
    args = parser.parse_args()
    registry = ModelRegistry(args.tracking_uri or StateLayout(default_home()).mlflow_tracking_uri, args.model_name)
    summary = summarise(registry, args.version or newest_version(registry)) | {"note": args.note}
    emit(summary, args.output)


if __name__ == "__main__":
    main()
