"""The `wms` commands that need no trained model: clear refusals and empty histories."""

from click.testing import CliRunner

from wms.cli import main


def test_rollback_without_an_earlier_champion_exits_2_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("WMS_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["rollback", "--reason", "bad night photos"])
    assert result.exit_code == 2
    assert "no earlier champion to roll back to" in result.output


def test_rollback_needs_a_reason():
    result = CliRunner().invoke(main, ["rollback"])
    assert result.exit_code == 2 and "--reason" in result.output


def test_history_of_a_new_registry_says_there_was_no_champion(tmp_path, monkeypatch):
    monkeypatch.setenv("WMS_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["models", "history"])
    assert result.exit_code == 0, result.output
    assert "has had no champion yet" in result.output
