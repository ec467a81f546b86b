"""benchmarks/cpu_cycles.sh chains its cycles: each starts from the weights of the one before, at its own size."""

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cpu_cycles.sh"


def run_cycles(tmp_path: Path, cycles: str, **extra: str) -> list[list[str]]:
    """Run the script in tmp_path with a stand-in Python that records its arguments and writes the --output file."""
    (tmp_path / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    recorder = tmp_path / "record.sh"
    recorder.write_text(
        '#!/usr/bin/env bash\necho "$*" >> calls.txt\n'
        'while [ $# -gt 0 ]; do if [ "$1" = --output ]; then echo {} > "$2"; fi; shift; done\n'
    )
    recorder.chmod(0o755)
    environment = {**os.environ, "PYTHON": str(recorder), "CYCLES": cycles, "NAME": "run", **extra}
    subprocess.run(["bash", str(SCRIPT), "photos"], cwd=tmp_path, env=environment, check=True, capture_output=True)
    calls = tmp_path / "calls.txt"
    return [line.split() for line in calls.read_text().splitlines()] if calls.exists() else []


def value_after(arguments: list[str], flag: str) -> str | None:
    return arguments[arguments.index(flag) + 1] if flag in arguments else None


def test_each_cycle_starts_from_the_checkpoints_of_the_one_before(tmp_path):
    first, second = run_cycles(tmp_path, "60:0.002:128 35:0.001:192")
    assert value_after(first, "--initial-weights") is None
    assert (value_after(first, "--epochs"), value_after(first, "--learning-rate"), value_after(first, "--image-size")) == (
        "60",
        "0.002",
        "128",
    )
    assert value_after(second, "--initial-weights") == ".wms/bench-checkpoints/run-cycle1/last.pt"
    assert value_after(second, "--image-size") == "192"
    assert value_after(second, "--output") == "benchmarks/results/run-cycle2.json"
    assert first[1] == "photos"


def test_every_cycle_trains_with_the_seed_asked_for(tmp_path):
    calls = run_cycles(tmp_path, "2:0.002:64 1:0.0005:64", SEED="3")
    assert [value_after(call, "--seed") for call in calls] == ["3", "3"]
    (tmp_path / "calls.txt").unlink()
    for report in (tmp_path / "benchmarks" / "results").iterdir():
        report.unlink()
    assert [value_after(call, "--seed") for call in run_cycles(tmp_path, "2:0.002:64")] == ["0"]


def test_a_cycle_whose_report_exists_is_skipped_and_the_next_still_chains_on_it(tmp_path):
    run_cycles(tmp_path, "2:0.002:64")
    (tmp_path / "calls.txt").unlink()
    (only,) = run_cycles(tmp_path, "2:0.002:64 1:0.0005:64")
    assert value_after(only, "--output") == "benchmarks/results/run-cycle2.json"
    assert value_after(only, "--initial-weights") == ".wms/bench-checkpoints/run-cycle1/last.pt"


def test_a_failed_cycle_stops_the_chain(tmp_path):
    failing = tmp_path / "fail.sh"
    failing.write_text('#!/usr/bin/env bash\necho "$*" >> calls.txt\nexit 3\n')
    failing.chmod(0o755)
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    environment = {**os.environ, "PYTHON": str(failing), "CYCLES": "1:0.1:64 1:0.1:64", "NAME": "run"}
    finished = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=environment, capture_output=True, check=False)
    assert finished.returncode == 3
    assert len((tmp_path / "calls.txt").read_text().splitlines()) == 1


def test_a_malformed_cycle_is_refused_before_anything_trains(tmp_path):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    environment = {**os.environ, "PYTHON": "false", "CYCLES": "60:0.002:192 thirty", "NAME": "run"}
    finished = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=environment, capture_output=True, text=True, check=False)
    assert finished.returncode == 2
    assert "thirty" in finished.stderr and "epochs:peak learning rate:input side" in finished.stderr
