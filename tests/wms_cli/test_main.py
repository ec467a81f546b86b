"""The `wms` commands: clear refusals, empty histories, and serving an exported model."""

import contextlib
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from tests.conftest import free_port_block
from tests.models import centre_window_onnx, fails_on_bright_photos
from tests.photos import encode
from wms_cli.main import main


def test_rollback_without_an_earlier_champion_exits_2_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("WMS_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["rollback", "--reason", "bad night photos"])
    assert result.exit_code == 2
    assert "no earlier champion to roll back to" in result.output


def test_version_names_the_package_and_the_commit():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("wms 0.1.0 (commit ")


def test_status_of_a_new_state_says_what_is_missing_in_text_and_json(tmp_path, monkeypatch):
    monkeypatch.setenv("WMS_HOME", str(tmp_path))
    monkeypatch.setenv("WMS_SERVE_PORT", str(free_port_block(8)))  # not the ports of a server this machine runs
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    text = CliRunner().invoke(main, ["status"])
    assert text.exit_code == 0, text.output
    assert "no champion nor challenger yet" in text.output and "serving    nothing" in text.output
    report = json.loads(CliRunner().invoke(main, ["status", "--json"]).output)
    assert (report["versions"], report["served_version"], report["runs"], report["data_version"]) == ([], None, [], None)
    assert report["watched"].startswith("synthetic photos")


def test_predict_on_an_empty_folder_exits_2_and_says_so_on_stderr(tmp_path, monkeypatch):
    monkeypatch.setenv("WMS_HOME", str(tmp_path))
    (tmp_path / "photos").mkdir()
    result = CliRunner().invoke(main, ["predict", "--model", "champion", "--input", str(tmp_path / "photos"), "--output", "x"])
    assert result.exit_code == 2 and "holds no files" in result.stderr and result.stdout == ""


def test_validate_shows_a_progress_bar_on_a_terminal_and_keeps_its_json_clean(synthetic_root):
    terminal, its_side = pty.openpty()
    fcntl.ioctl(its_side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal has a size
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("wms")), "data", "validate", str(synthetic_root)],
        stdout=subprocess.PIPE,
        stderr=its_side,
    )
    os.close(its_side)
    shown = ""
    with contextlib.suppress(OSError):  # EIO once the command has ended and all it wrote was read
        while chunk := os.read(terminal, 1 << 16):
            shown += chunk.decode(errors="replace")
    os.close(terminal)
    completed = subprocess.CompletedProcess(process.args, process.wait(timeout=600), process.stdout.read())
    assert completed.returncode == 0
    assert json.loads(completed.stdout)["valid"] == 48
    assert "validation" in shown and "48/48" in shown


def test_every_command_s_help_is_whole():
    for arguments in (["--help"], ["data", "--help"], ["serve", "--help"], ["models", "--help"]):
        listing = CliRunner().invoke(main, arguments).output.split("Commands:")[1]
        assert "..." not in listing


def test_rollback_needs_a_reason():
    result = CliRunner().invoke(main, ["rollback"])
    assert result.exit_code == 2 and "--reason" in result.output


def test_history_of_a_new_registry_says_there_was_no_champion(tmp_path, monkeypatch):
    monkeypatch.setenv("WMS_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["models", "history"])
    assert result.exit_code == 0, result.output
    assert "has had no champion yet" in result.output


def test_serve_start_without_a_model_exits_2_and_says_what_to_give(tmp_path, monkeypatch):
    monkeypatch.setenv("WMS_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["serve", "start", "--model", str(tmp_path / "absent.onnx")])
    assert result.exit_code == 2
    assert "give 'champion'" in result.output


@pytest.mark.integration
@pytest.mark.slow
def test_serve_start_serves_an_onnx_file_then_status_and_stop_find_it(tmp_path, monkeypatch, untrained_onnx):
    monkeypatch.setenv("WMS_HOME", str(tmp_path / "state"))
    onnx_path = untrained_onnx
    port = free_port_block(8)
    try:
        started = CliRunner().invoke(main, ["serve", "start", "--model", str(onnx_path), "--port", str(port)])
        assert started.exit_code == 0, started.output
        url = started.output.strip().splitlines()[-1]
        assert url == f"http://127.0.0.1:{port}/predictions/wms-unet"
        photo = encode(Image.new("RGB", (120, 90), (60, 60, 60)), "JPEG")
        request = urllib.request.Request(url, data=photo, headers={"Content-Type": "image/jpeg"})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert json.load(response)["model_version"].startswith("file-")
        status = CliRunner().invoke(main, ["serve", "status"])
        assert f"at http://127.0.0.1:{port}" in status.output
    finally:
        stopped = CliRunner().invoke(main, ["serve", "stop"])
    assert "TorchServe stopped" in stopped.output
    assert "not serving" in CliRunner().invoke(main, ["serve", "status"]).output


@pytest.mark.integration
@pytest.mark.slow
def test_serve_canary_starts_weighs_refuses_a_bad_weight_and_retires(tmp_path, monkeypatch):
    monkeypatch.setenv("WMS_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    in_service, candidate = centre_window_onnx(tmp_path / "one.onnx"), fails_on_bright_photos(tmp_path / "two.onnx")
    port = free_port_block(8)

    def wms(*arguments):
        return CliRunner().invoke(main, ["serve", *arguments])

    try:
        assert wms("start", "--model", str(in_service), "--port", str(port)).exit_code == 0
        started = wms("canary", "start", "--model", str(candidate), "--weight", "30")
        assert started.exit_code == 0, started.output
        state = json.loads(wms("canary", "status", "--json").output)
        assert state["weight"] == 30 and state["candidate"] != state["in_service"]
        overall = json.loads(CliRunner().invoke(main, ["status", "--json"]).stdout)
        assert overall["canary"] == {"version": state["candidate"], "weight": 30}

        refused = wms("canary", "weight", "150")
        assert refused.exit_code == 2 and "a whole percent from 0 to 100" in refused.output
        assert json.loads(wms("canary", "status", "--json").output) == state, "the weight was left as it was"

        assert wms("canary", "weight", "0").exit_code == 0
        retired = wms("canary", "retire")
        assert retired.exit_code == 0 and f"candidate {state['candidate']} retired" in retired.output
        assert json.loads(wms("canary", "status", "--json").output)["candidate"] is None
        assert wms("canary", "retire").exit_code == 2, "no canary left to retire"
    finally:
        wms("stop")


def test_data_use_records_the_watched_folder_and_its_training_settings_with_a_history(synthetic_root, tmp_path, monkeypatch):
    monkeypatch.setenv("WMS_HOME", str(tmp_path))
    used = CliRunner().invoke(main, ["data", "use", str(synthetic_root), "--preset", "cpu"])
    assert used.exit_code == 0, used.output
    assert f"watched photos: synthetic -> {synthetic_root.resolve()}" in used.output
    back = CliRunner().invoke(main, ["data", "use", "--synthetic"])
    assert back.exit_code == 0, back.output
    shown = CliRunner().invoke(main, ["data", "show"])
    assert "watching synthetic photos" in shown.output
    assert f"{synthetic_root.resolve()}  (wms data use; training {{'preset': 'cpu'}})" in shown.output


@pytest.mark.parametrize(
    ("arguments", "refusal"),
    [
        ([], "give exactly one of FOLDER"),
        (["--synthetic", "--preset", "fastest"], "unknown preset 'fastest'"),
        (["--synthetic", "--set", "fine_tune=4:0.0003"], "is not epochs:peak learning rate:input side"),
        (["--synthetic", "--set", "image_size=large"], "image_size must be a whole number, not 'large'"),
        (["--synthetic", "--set", "depth=5"], "no such training setting: depth"),
        (["--synthetic", "--set", "epochs"], "is not key=value"),
        (["--synthetic", "--allow-outside-links"], "give the folder too"),
    ],
)
def test_data_use_refuses_what_it_cannot_record_and_changes_nothing(arguments, refusal, tmp_path, monkeypatch):
    monkeypatch.setenv("WMS_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["data", "use", *arguments])
    assert result.exit_code == 2 and refusal in result.output
    assert not (tmp_path / "watched.json").exists()


def test_a_damaged_record_is_reported_not_replaced_by_synthetic_photos(tmp_path, monkeypatch):
    monkeypatch.setenv("WMS_HOME", str(tmp_path))
    (tmp_path / "watched.json").write_text("{")
    result = CliRunner().invoke(main, ["data", "show"])
    assert result.exit_code == 2 and "cannot be read" in result.output
