"""New photos to a new served champion, round after round: the time from copying held-back real pairs into the
watched folder to the new version answering at the inference URL, with the Dagster daemon doing the rest by itself,
and whether the new champion is better than the one before on photos that neither ever saw.

    # 1. three disjoint sets of the real pairs (by a hash of their names): unseen (never trained on by any model),
    #    held back (added round by round), watched (the first champion's photos); and that champion, from scratch
    python benchmarks/new_photos.py prepare ../shared/data/water-meters /tmp/wms-new-photos --unseen 150 --hold-back 200
    WMS_HOME=/tmp/wms-new-photos/state wms run --preset cpu --data /tmp/wms-new-photos/watched
    # 2. with the daemon on, copy the held-back pairs in, in rounds; each round's champion before and after are scored
    #    on the unseen photos as the service reads them, photo by photo
    WMS_HOME=/tmp/wms-new-photos/state python benchmarks/new_photos.py measure /tmp/wms-new-photos --rounds 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
from datetime import UTC, datetime
from pathlib import Path

from emit import emit

from wms.core.local_state import MODEL_NAME, StateLayout, default_home
from wms.data.validation import validate_folder
from wms.data.watched import folder_source, read_watched, record_watched
from wms.inference.evaluation import score_as_served
from wms.inference.predict import onnx_segmenter
from wms.registry.gates import paired_comparison
from wms.registry.model_reference import onnx_of_version
from wms.registry.model_registry import CHAMPION, ModelRegistry
from wms.serving.torchserve import LocalTorchServe

HELD_BACK = "held-back"
WATCHED = "watched"
UNSEEN = "unseen"
PROJECT = Path(__file__).resolve().parent.parent
SENSOR_TAG = "dagster/sensor_name"


def choose(names: list[str], unseen: int, hold_back: int, watched: int) -> dict[str, set[str]]:
    """Disjoint sets by a hash of the name: the first `unseen`, the next `hold_back`, then `watched` (0: all the rest)."""
    ordered = sorted(names, key=lambda name: hashlib.sha256(name.encode()).hexdigest())
    rest = ordered[unseen + hold_back :]
    return {
        UNSEEN: set(ordered[:unseen]),
        HELD_BACK: set(ordered[unseen : unseen + hold_back]),
        WATCHED: set(rest[:watched] if watched else rest),
    }


def prepare(source: Path, root: Path, unseen: int, hold_back: int, watched: int) -> None:
    """Copy the valid pairs of `source` into root/unseen, root/held-back and root/watched (disjoint, see `choose`)."""
    pairs = validate_folder(source).valid
    sets = choose([pair.name for pair in pairs], unseen, hold_back, watched)
    folder_of = {name: folder for folder, names in sets.items() for name in names}
    for pair in pairs:
        if pair.name not in folder_of:
            continue
        for sub, path in (("images", pair.image), ("masks", pair.mask)):
            (root / folder_of[pair.name] / sub).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, root / folder_of[pair.name] / sub / pair.name)
    print(", ".join(f"{len(names)} pairs in {root / folder}" for folder, names in sets.items()))


def measure(root: Path, training: dict, ui_port: int, timeout_s: float, rounds: int) -> dict:
    """With `dagster dev` (webserver and daemon) running on the state of $WMS_HOME, copy the held-back pairs into the
    watched folder in `rounds` batches; time each until the inference URL answers with a new version, and score the
    champions before and after each round on the unseen photos."""
    layout = StateLayout(default_home())
    registry, server = ModelRegistry(layout.mlflow_tracking_uri, MODEL_NAME), LocalTorchServe.of_home(layout.torchserve_home)
    old = registry.version_by_alias(CHAMPION)
    probe = next((root / UNSEEN / "images").iterdir()).read_bytes()
    if old is None or server.predict(MODEL_NAME, probe)["model_version"] != str(old.version):
        raise SystemExit("no champion is served from $WMS_HOME: train and serve one first (see this script's docstring)")
    watched = folder_source(root / WATCHED, training, "benchmarks/new_photos.py")
    if read_watched(layout.watched_source).location != watched.location:  # `wms run --data` recorded it, with its recipe
        record_watched(layout.watched_source, watched)
    names = sorted(path.name for path in (root / HELD_BACK / "images").iterdir())
    batches = [names[number::rounds] for number in range(rounds)]
    dev = _start_dagster_dev(layout, ui_port, root / "dagster-dev.log")
    results = []
    try:
        _wait_for_the_daemon(layout)
        for number, batch in enumerate(batches, start=1):
            results.append(_round(number, batch, root, layout, registry, server, probe, timeout_s))
            print(json.dumps(results[-1]), flush=True)
    finally:
        os.killpg(dev.pid, signal.SIGKILL)
    return {
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPU cores, no GPU; dagster dev (webserver and daemon) and TorchServe on it",
        "preset": training.get("preset"),
        "unseen_photos": len(list((root / UNSEEN / "images").iterdir())),
        "first_champion": _version_facts(registry, str(old.version)),
        "rounds": results,
    }


def _round(number: int, names: list[str], root: Path, layout, registry, server, probe: bytes, timeout_s: float) -> dict:
    """Copy `names` in; wait for the new version (or the run's failure); the champions before and after, on unseen
    photos."""
    before = str(registry.version_by_alias(CHAMPION).version)
    newest_before = _newest_version(registry)
    copied_at = time.time()
    _copy_in(root / HELD_BACK, root / WATCHED, names)
    copy_seconds = time.time() - copied_at
    answered_at, versions = _wait_for_a_new_version(server, probe, before, layout, copied_at, timeout_s)
    run = _finished_sensor_run(layout, copied_at)
    made = _newest_version(registry)
    candidate = made if made != newest_before else None
    return {
        "round": number,
        "photos_added": len(names),
        "copy_seconds": round(copy_seconds, 1),
        "copy_to_new_version_answering_seconds": round(answered_at - copied_at, 1) if answered_at else None,
        "versions_answering_meanwhile": sorted(set(versions)),
        "champion_before": before,
        "champion_after": str(registry.version_by_alias(CHAMPION).version),
        "run": run,
        "candidate": _version_facts(registry, candidate) if candidate else None,
        "unseen": _on_unseen(registry, root / UNSEEN, layout, before, candidate) if candidate else None,
    }


def _newest_version(registry: ModelRegistry) -> str:
    return str(max(int(version.version) for version in registry.client.search_model_versions(f"name = '{MODEL_NAME}'")))


def _on_unseen(registry: ModelRegistry, unseen: Path, layout: StateLayout, champion: str, candidate: str) -> dict:
    """Both versions' exported models on the unseen photos, each photo read as the service reads it, and the paired
    comparison (candidate minus champion) the no-regression gate makes."""
    photos = validate_folder(unseen).valid
    scored = {
        version: score_as_served(onnx_segmenter(onnx_of_version(registry, version, layout.serving / "models").onnx_path), photos)
        for version in (champion, candidate)
    }
    comparison = paired_comparison(scored[candidate].iou_by_name(), scored[champion].iou_by_name(), confidence=0.9)
    return {
        "photos": len(photos),
        **{
            f"version {version}": {
                "mean_iou": round(result.scores.mean_iou, 4),
                "mean_dice": round(result.scores.mean_dice, 4),
                "under_half": result.scores.images_below_half,
            }
            for version, result in scored.items()
        },
        "candidate_minus_champion": comparison.describe(),
    }


def _start_dagster_dev(layout: StateLayout, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DAGSTER_HOME": str(layout.dagster_home), "WMS_HOME": str(layout.home), "HF_HUB_OFFLINE": "1"}
    command = [str(Path(sys.executable).with_name("dagster")), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    with open(log, "ab") as stream:
        return subprocess.Popen(command, cwd=PROJECT, env=env, stdout=stream, stderr=stream, start_new_session=True)


def _wait_for_the_daemon(layout: StateLayout, timeout_s: float = 300) -> None:
    """Until the daemon's sensor loop has beaten, and a tick of the data sensor has had time to see the folder."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(layout.dagster_home)) as instance:
        started, deadline = time.time(), time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            beats = instance.get_daemon_heartbeats()
            if "SENSOR" in beats and beats["SENSOR"].timestamp > started:
                time.sleep(30)
                return
            time.sleep(2)
    raise SystemExit(f"the Dagster daemon did not start within {timeout_s:.0f} s: see the dagster dev log")


def _copy_in(held_back: Path, watched: Path, names: list[str]) -> None:
    for name in names:
        for sub in ("images", "masks"):
            shutil.copyfile(held_back / sub / name, watched / sub / name)


def _wait_for_a_new_version(server, probe: bytes, old: str, layout: StateLayout, since: float, timeout_s: float):
    """Send a photo every 2 s until another version answers (or the automatic run fails: None); every answer's
    version is kept (no gap, no error)."""
    versions, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            versions.append(server.predict(MODEL_NAME, probe)["model_version"])
        except (urllib.error.URLError, OSError) as error:
            raise SystemExit(f"the inference URL failed while the new version was on its way: {error}") from error
        if versions[-1] != old:
            return time.time(), versions
        if any(run.status.value == "FAILURE" for run in _sensor_runs(layout, since)):
            return None, versions
        time.sleep(2)
    raise SystemExit(f"no new version answered within {timeout_s:.0f} s")


def _sensor_runs(layout: StateLayout, since: float) -> list:
    """The data sensor's runs created after `since`, newest first."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(layout.dagster_home)) as instance:
        records = instance.get_run_records(dg.RunsFilter(tags={SENSOR_TAG: "data_change_sensor"}))
    return [record.dagster_run for record in records if record.create_timestamp.timestamp() > since]


def _finished_sensor_run(layout: StateLayout, since: float, timeout_s: float = 600) -> dict:
    """The automatic run started after the copy, once finished: when it was created, started and ended, and its steps."""
    import dagster as dg

    deadline = time.monotonic() + timeout_s
    with dg.DagsterInstance.from_config(str(layout.dagster_home)) as instance:
        while time.monotonic() < deadline:
            records = [
                record
                for record in instance.get_run_records(dg.RunsFilter(tags={SENSOR_TAG: "data_change_sensor"}))
                if record.create_timestamp.timestamp() > since
            ]
            if records and records[0].end_time:
                record = records[0]
                steps = instance.get_run_step_stats(record.dagster_run.run_id)
                return {
                    "run_id": record.dagster_run.run_id,
                    "status": record.dagster_run.status.value,
                    "runs_started_by_the_copy": len(records),
                    "created_after_copy_seconds": round(record.create_timestamp.timestamp() - since, 1),
                    "run_seconds": round(record.end_time - record.start_time, 1) if record.start_time else None,
                    "step_seconds": {
                        step.step_key: round(step.end_time - step.start_time, 1)
                        for step in steps
                        if step.end_time and step.start_time
                    },
                }
            time.sleep(5)
    raise SystemExit("the automatic run did not finish")


def _version_facts(registry: ModelRegistry, version: str) -> dict:
    model_version = registry.client.get_model_version(MODEL_NAME, version)
    run = registry.client.get_run(model_version.run_id)
    tags = model_version.tags
    return {
        "version": version,
        "test_mean_iou": float(tags["test_mean_iou"]),
        "test_mean_dice": float(tags["test_mean_dice"]),
        "photos": tags.get("photos"),
        "start": tags.get("start", run.data.tags.get("start", "from scratch (registered before model cards)")),
        "schedule": run.data.params.get("cycles"),
        "train_seconds": run.data.metrics.get("train_seconds"),
        "mlflow_run_seconds": round((run.info.end_time - run.info.start_time) / 1000, 1),
        "no_regression_gate": tags.get("gate.no_regression"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="split the real pairs into a watched folder and held-back pairs")
    prep.add_argument("source", type=Path)
    prep.add_argument("root", type=Path)
    prep.add_argument("--unseen", type=int, default=150, help="pairs no model ever trains on: where champions are compared")
    prep.add_argument("--hold-back", type=int, default=200, help="pairs kept out of the first training, added in rounds")
    prep.add_argument("--watched", type=int, default=0, help="pairs the first champion trains on (0: all the rest)")
    timed = commands.add_parser("measure", help="with the daemon on, add the held-back pairs and time the new version")
    timed.add_argument("root", type=Path)
    timed.add_argument("--preset", default="cpu", help="the training preset the automatic runs use")
    timed.add_argument("--ui-port", type=int, default=3000)
    timed.add_argument("--timeout", type=float, default=3600, help="seconds to wait for each new version")
    timed.add_argument("--rounds", type=int, default=2, help="batches the held-back pairs arrive in")
    timed.add_argument("--output", type=Path, help="write the JSON here too (benchmarks/results/...)")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.source, args.root, args.unseen, args.hold_back, args.watched)
    else:
        emit(measure(args.root, {"preset": args.preset}, args.ui_port, args.timeout, args.rounds), args.output)


if __name__ == "__main__":
    main()
