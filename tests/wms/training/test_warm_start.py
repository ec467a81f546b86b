"""When a retrain fine-tunes the champion and when it starts from scratch, and why."""

from dataclasses import replace

import pytest

from wms.training.settings import preset
from wms.training.warm_start import AUTO, SCRATCH, Parent, scratch_reason

CPU = preset("cpu")
CHAMPION = Parent(version="3", encoder="mobilenet_v2", image_size=192, data_version="old")


def test_new_data_for_a_champion_of_the_same_recipe_fine_tunes_it():
    assert scratch_reason(AUTO, CPU, CHAMPION, "new") is None


@pytest.mark.parametrize(
    ("start", "settings", "parent", "data", "reason"),
    [
        (SCRATCH, CPU, CHAMPION, "new", "asked to start from scratch"),
        (AUTO, CPU, None, "new", "there is no champion"),
        (AUTO, CPU.with_overrides(fine_tune=""), CHAMPION, "new", "no fine_tune schedule"),
        (AUTO, CPU.with_overrides(encoder="resnet34"), CHAMPION, "new", "has encoder mobilenet_v2, these settings resnet34"),
        (AUTO, preset("demo"), CHAMPION, "new", "takes 192-pixel input, these settings 128"),
        (AUTO, CPU, CHAMPION, "old", "trained on this data version already"),
    ],
)
def test_anything_that_makes_the_champion_a_poor_start_trains_from_scratch(start, settings, parent, data, reason):
    assert reason in scratch_reason(start, settings, parent, data)


def test_an_unknown_start_is_refused():
    with pytest.raises(ValueError, match="not one of auto, scratch"):
        scratch_reason("warm", CPU, CHAMPION, "new")


def test_a_champion_with_other_decoder_widths_is_not_fine_tuned():
    narrow = replace(CHAMPION, decoder_channels="128 64 32 16 16")
    reason = scratch_reason(AUTO, CPU, narrow, "new")
    assert reason == "the champion (version 3) has decoder widths 128 64 32 16 16, these settings 256 128 64 32 16"
