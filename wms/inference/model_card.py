"""A registered version's model card: what it was trained on, how, from what, how it scored and which gates it passed.

It is written into the version's MLflow description and its facts into tags; `wms models history`, the served
answer and `make demo` show `trained_on` and, for a model of synthetic photos, the notice below.
"""

from __future__ import annotations

SYNTHETIC = "synthetic"
ORIGIN_TAGS = ("trained_on", "photos", "preset", "schedule", "start", "parent_version", "reason")
"""Version (and MLflow run) tags that say where a model came from."""
MODEL_CARD_FILE = "model-card.json"
"""In a model archive beside the ONNX model: {"trained_on": ...}, which the handler puts into every answer."""
REAL_DATA_COMMAND = "wms run --preset cpu --data DIR"
SYNTHETIC_NOTICE = (
    "This model was trained on synthetic photos: it will not find the digit window in real meter photos; "
    f"`{REAL_DATA_COMMAND}` trains one that does on a folder of real photos (images/ and masks/)."
)


def notice(trained_on: str | None) -> str | None:
    """The one-sentence warning a model of synthetic photos carries wherever it is shown; None for real photos."""
    return SYNTHETIC_NOTICE if trained_on == SYNTHETIC else None


def model_card(version: str, tags: dict[str, str], gates: dict[str, str]) -> str:
    """The card, in Markdown (the MLflow UI renders a version's description so)."""
    trained_on = tags.get("trained_on", "unknown (registered before model cards)")
    lines = [
        f"**WMS U-Net, version {version}**",
        "",
        f"- trained on: {trained_on}, data version {tags.get('data_version', '?')} ({tags.get('photos', '?')} photos)",
        f"- recipe: preset {tags.get('preset', '?')}, encoder {tags.get('encoder', '?')}, schedule {tags.get('schedule', '?')}",
        f"- start: {tags.get('start', '?')}",
        f"- why trained: {tags.get('reason', '?')}",
        f"- test: mean IoU {tags.get('test_mean_iou', '?')}, mean Dice {tags.get('test_mean_dice', '?')}",
        "- gates: " + ("; ".join(f"{name} {outcome}" for name, outcome in sorted(gates.items())) or "not judged yet"),
    ]
    warning = notice(tags.get("trained_on"))
    return "\n".join(lines + ([f"\n**{warning}**"] if warning else []))
