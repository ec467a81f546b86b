"""Training settings and presets (wms.training.settings): presets read from their files, every setting chosen one way."""

from dataclasses import replace

import pytest

from wms.training.settings import PRESETS, TrainSettings, load_presets, parse_assignment, preset, settings_for

TINY = TrainSettings(encoder="mobilenet_v2", image_size=64, epochs=2, batch_size=8)
TWO_CYCLES = TINY.with_overrides(cycles="1:0.002:64 2:0.001:64")


def test_presets_are_named_and_an_unknown_one_is_refused():
    assert PRESETS["demo"].device == "auto" and PRESETS["full"].encoder == "resnet34"
    assert replace(preset("demo"), fine_tune="") == TrainSettings()
    with pytest.raises(ValueError, match="choose one of cpu, demo, full"):
        preset("fast")


def test_every_preset_fine_tunes_at_its_own_input_side():
    """Else a retrain on new data could never start from the champion that preset trained."""
    assert all(settings.fine_tune_side == settings.image_size for settings in PRESETS.values())


def test_fine_tuning_trains_the_short_schedule_from_the_given_weights(tmp_path):
    tuned = preset("cpu").fine_tuning(tmp_path / "parent.pt")
    assert (tuned.cycles, tuned.epochs, tuned.image_size) == ("4:0.001:192", 4, 192)
    assert tuned.schedule()[0].initial_weights == str(tmp_path / "parent.pt")
    with pytest.raises(ValueError, match="no fine_tune schedule"):
        preset("cpu").with_overrides(fine_tune="").fine_tuning(tmp_path / "parent.pt")


def test_cycles_set_the_length_the_first_rate_and_the_last_input_side():
    growing = TINY.with_overrides(cycles="1:0.002:64 2:0.001:96")
    assert (growing.epochs, growing.learning_rate, growing.image_size) == (3, 0.002, 96)
    first, second = growing.schedule()
    assert (first.epochs, first.image_size, second.epochs, second.learning_rate, second.image_size) == (1, 64, 2, 0.001, 96)
    assert PRESETS["cpu"].encoder == "mobilenet_v2" and PRESETS["cpu"].image_size == 192 and PRESETS["cpu"].epochs == 125
    assert TWO_CYCLES.with_overrides(cycles="").schedule() == [TWO_CYCLES.with_overrides(cycles="")]


@pytest.mark.parametrize(
    ("cycles", "complaint"),
    [
        ("60:0.002", "is not epochs:peak"),
        ("ten:0.002:128", "is not epochs:peak"),
        ("5:0.002:100", "multiple of 32"),
        ("0:0.002:128", "at least 1"),
        ("5:2:128", "between 0 and 1"),
        ("   ", "blank"),
    ],
)
def test_a_malformed_cycle_is_refused_with_the_word_and_the_format(cycles, complaint):
    with pytest.raises(ValueError, match=complaint):
        TINY.with_overrides(cycles=cycles)


def test_settings_in_cycles_refuse_an_epochs_rate_or_size_of_their_own():
    with pytest.raises(ValueError, match="change `cycles` instead"):
        PRESETS["cpu"].with_overrides(epochs=10)
    assert PRESETS["cpu"].with_overrides(cycles="", epochs=10).epochs == 10


def test_the_preset_files_are_the_presets():
    files = load_presets()
    assert set(files) == set(PRESETS) == {"cpu", "demo", "full"}
    assert all(files[name].description and files[name].settings == PRESETS[name] for name in files)
    assert PRESETS["cpu"].batch_size == 8 and PRESETS["cpu"].patience == PRESETS["full"].patience == 40, "cpu is based on full"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('description = "x"\n[settings]\nimage_sise = 192\n', "no such training setting: image_sise"),
        ('description = "x"\n[settings]\nimage_size = "192"\n', "image_size must be a whole number, not '192'"),
        ('description = "x"\n[settings]\nlearning_rate = true\n', "learning_rate must be a number, not True"),
        ('description = "x"\nbased_on = "nothing"\n', "based on 'nothing', which has no file"),
        ('description = "x"\nbased_on = "broken"\n', "in a circle"),
        ("[settings]\nepochs = 3\n", "give a description"),
    ],
)
def test_a_wrong_preset_file_is_refused_with_its_name(tmp_path, text, complaint):
    (tmp_path / "broken.toml").write_text(text)
    with pytest.raises(ValueError, match=r"broken\.toml") as refused:
        load_presets(tmp_path)
    assert complaint in str(refused.value)


def test_a_setting_is_changed_as_key_equals_value_read_as_its_type():
    assert parse_assignment("image_size=192") == ("image_size", 192)
    assert parse_assignment("learning-rate=1e-3") == ("learning_rate", 0.001)
    assert parse_assignment("cycles=") == ("cycles", "")
    assert settings_for({"preset": "cpu", "cycles": "", "epochs": 3}).epochs == 3
    for text, complaint in [
        ("epochs", "is not key=value"),
        ("epochs=ten", "whole number"),
        ("depth=5", "no such training setting"),
    ]:
        with pytest.raises(ValueError, match=complaint):
            parse_assignment(text)


def test_settings_are_checked_whoever_makes_them():
    with pytest.raises(ValueError, match="batch_size must be a whole number"):
        TrainSettings(batch_size=8.5)
    assert TrainSettings(learning_rate=1).learning_rate == 1.0
    with pytest.raises(ValueError, match="no such training setting: depth"):
        TINY.with_overrides(depth=5)


def test_switches_read_true_or_false_in_words_and_refuse_anything_else():
    assert parse_assignment("compile=yes") == ("compile", True)
    assert parse_assignment("compile=False") == ("compile", False)
    with pytest.raises(ValueError, match="compile must be true or false, not 'maybe'"):
        parse_assignment("compile=maybe")
    with pytest.raises(ValueError, match="compile must be true or false, not 1"):
        TINY.with_overrides(compile=1)


def test_decoder_widths_and_precision_are_checked_when_the_settings_are_made():
    assert TINY.with_overrides(decoder_channels="128, 64, 32, 16, 16").decoder_channels == "128, 64, 32, 16, 16"
    with pytest.raises(ValueError, match="must be five whole numbers above 0"):
        TINY.with_overrides(decoder_channels="128 64 32")
    with pytest.raises(ValueError, match="precision must be one of auto, bf16, fp32, not 'fp16'"):
        TINY.with_overrides(precision="fp16")


def test_settings_recorded_as_text_read_back_as_they_were_and_older_records_take_the_new_defaults():
    changed = PRESETS["cpu"].with_overrides(compile=True, precision="fp32", seed=3)
    assert TrainSettings.from_params({key: str(value) for key, value in changed.as_params().items()}) == changed
    before_decoders = {key: str(value) for key, value in TINY.as_params().items() if key != "decoder_channels"}
    assert TrainSettings.from_params(before_decoders | {"cycle": "2"}).decoder_channels == "256 128 64 32 16"
