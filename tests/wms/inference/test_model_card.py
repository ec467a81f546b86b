"""The model card: what a version was trained on, how, from what; the notice a synthetic model carries."""

from wms.inference.model_card import SYNTHETIC_NOTICE, model_card, notice

TAGS = {
    "trained_on": "/data/meters",
    "data_version": "abc",
    "photos": "train=300 val=50 test=50",
    "preset": "cpu",
    "encoder": "mobilenet_v2",
    "schedule": "4:0.0003:192",
    "start": "fine-tuned from version 2 (data version old)",
    "reason": "new data",
    "test_mean_iou": "0.9012",
    "test_mean_dice": "0.9400",
}


def test_the_card_tells_source_recipe_start_scores_and_gates():
    card = model_card("3", TAGS, {"test_scores": "passed: IoU 0.90"})
    for fact in ("version 3", "/data/meters", "train=300", "preset cpu", "4:0.0003:192", "fine-tuned from version 2"):
        assert fact in card
    assert "test_scores passed: IoU 0.90" in card
    assert SYNTHETIC_NOTICE not in card


def test_a_synthetic_model_says_it_finds_no_windows_in_real_photos_and_what_to_run():
    card = model_card("1", {**TAGS, "trained_on": "synthetic"}, {})
    assert SYNTHETIC_NOTICE in card and "gates: not judged yet" in card
    assert "will not find the digit window in real meter photos" in notice("synthetic")
    assert "wms run --preset cpu --data DIR" in notice("synthetic")
    assert notice("/data/meters") is None
