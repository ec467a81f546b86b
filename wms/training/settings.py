"""How a U-Net is trained: the settings, declared once here, and the presets, one TOML file each in presets/.

Every way of choosing settings goes through this module: the `trained_model` asset's config (generated from these
fields), `wms run --preset NAME --set key=value` and `wms data use`, and the benchmark scripts. A preset file holds a
description, optionally `based_on` another preset, and a [settings] table of these fields; an unknown field or a
value of the wrong type is refused with the file's name.
"""

from __future__ import annotations

import tomllib
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cache
from pathlib import Path

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
DEFAULT_PRESET = "demo"
PRECISIONS = ("auto", "bf16", "fp32")
"""The choices of the precision setting, as wms.training.speed resolves them."""


def setting(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainSettings:
    encoder: str = setting("mobilenet_v2", "U-Net encoder: resnet34, resnet18, mobilenet_v2 or efficientnet-b0.")
    image_size: int = setting(128, "Side of the square model input, in pixels (a multiple of 32).")
    epochs: int = setting(10, "Passes over the train split (fewer with early stopping).")
    batch_size: int = setting(8, "Photos per optimizer step.")
    learning_rate: float = setting(2e-3, "Peak learning rate of the one-cycle schedule.")
    weight_decay: float = setting(1e-4, "AdamW's weight decay.")
    loss: str = setting("bce_dice", "bce_dice, focal_dice or bce_lovasz.")
    average_decay: float = setting(0.99, "Decay of the running average of the weights that is scored and kept.")
    patience: int = setting(0, "Stop after this many epochs without a better val IoU; 0 never stops.")
    zoom_probability: float = setting(0.5, "Share of training views zoomed in on the window (the second look).")
    quarter_turn_probability: float = setting(0.2, "Share of training views turned by a quarter or half turn.")
    max_angle: float = setting(
        12.0,
        "Largest turn of a training view either way, in degrees, besides the quarter turns (meters sit at any angle: "
        "about one window in five in the Kaggle masks fills less than half of its upright bounding box).",
    )
    seed: int = setting(0, "Seed of weights, order and augmentations.")
    threads: int = setting(2, "CPU threads for PyTorch.")
    workers: int = setting(0, "DataLoader worker processes (0 prepares batches in the trainer).")
    device: str = setting("auto", "'auto' (CUDA when present, else the CPU), 'cpu' or 'cuda'.")
    precision: str = setting(
        "auto",
        "What training passes and validation compute in: 'auto' is bf16 autocast where the GPU or CPU has fast bf16 "
        "kernels (avx512_bf16, AMX) and fp32 elsewhere; 'bf16' falls back to fp32 with a line where it would be slow; "
        "'fp32'. Weights, test scores and the ONNX export are fp32 always.",
    )
    compile: bool = setting(
        False, "Run the training step's forward through torch.compile (inductor); eager, with a line, if compiling fails."
    )
    decoder_channels: str = setting(
        "256 128 64 32 16",
        "Channels of the U-Net's five decoder stages, widest first; the decoder is most of a light encoder's cost "
        "(mobilenet_v2: 88 % of the FLOPs at smp's default widths).",
    )
    encoder_weights: str = setting("", "Path of encoder weights (a state dict) to start from; empty: random weights.")
    initial_weights: str = setting(
        "", "Path of a whole U-Net's weights (a state dict or a training checkpoint) to fine-tune; empty starts afresh."
    )
    validate_every: int = setting(
        1,
        "Score val every N epochs in the first two thirds of training, then every epoch: validation is a third or more "
        "of an epoch on a GPU, and the best epoch comes late in a one-cycle schedule.",
    )
    cycles: str = setting(
        "",
        "One-cycle schedules in a row, each from the best weights of the one before, as 'epochs:peak learning rate:input "
        "side' words (progressive resizing: '60:0.002:128 35:0.001:192 30:0.0005:192'). Empty: one schedule of epochs, "
        "learning_rate and image_size; with cycles, those three follow from them.",
    )
    fine_tune: str = setting(
        "",
        "The short schedule, as cycles words, of a retrain on new data that starts from the champion's weights; empty: "
        "every retrain starts afresh.",
    )

    def __post_init__(self) -> None:
        for name, kind in setting_types().items():
            object.__setattr__(self, name, checked_value(name, kind, getattr(self, name)))
        parse_channels(self.decoder_channels)
        if self.precision not in PRECISIONS:
            raise ValueError(f"training setting precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.fine_tune:
            parse_cycles(self.fine_tune)
        if self.cycles:
            schedule = parse_cycles(self.cycles)
            object.__setattr__(self, "epochs", sum(cycle.epochs for cycle in schedule))
            object.__setattr__(self, "learning_rate", schedule[0].learning_rate)
            object.__setattr__(self, "image_size", schedule[-1].image_size)

    def as_params(self) -> dict[str, str | int | float | bool]:
        return asdict(self)

    @classmethod
    def from_params(cls, params: dict) -> TrainSettings:
        """The settings a run or checkpoint recorded (as_params, or MLflow's parameters, all text): a setting added
        since it was recorded takes its default, so older models are still read as what they are."""
        known = {key: value for key, value in params.items() if key in setting_types()}
        return cls(**{key: _as_type(key, value) for key, value in known.items()})

    def with_overrides(self, **changes) -> TrainSettings:
        changes = {key: value for key, value in changes.items() if value is not None}
        unknown = changes.keys() - setting_types().keys()
        if unknown:
            raise ValueError(f"no such training setting: {', '.join(sorted(unknown))} ({SETTINGS_ARE})")
        cycles = changes.get("cycles", self.cycles)
        if cycles and CYCLE_FIELDS & changes.keys():
            raise ValueError(
                f"these settings train in cycles ({cycles}): {', '.join(sorted(CYCLE_FIELDS & changes.keys()))} "
                "follow from them; change `cycles` instead, or set it to '' for one schedule"
            )
        return replace(self, **changes)

    def fine_tuning(self, weights: Path) -> TrainSettings:
        """These settings for a retrain from a trained U-Net's weights: the `fine_tune` schedule instead of `cycles`."""
        if not self.fine_tune:
            raise ValueError("these settings have no fine_tune schedule: set one ('epochs:peak rate:input side') to fine-tune")
        return replace(self, cycles=self.fine_tune, initial_weights=str(weights), encoder_weights="")

    @property
    def fine_tune_side(self) -> int | None:
        """The input side the fine-tune schedule ends at (a champion of another side cannot be fine-tuned)."""
        return parse_cycles(self.fine_tune)[-1].image_size if self.fine_tune else None

    def schedule(self) -> list[TrainSettings]:
        """The settings of each one-cycle schedule, in order: one, or one per word of `cycles`."""
        if not self.cycles:
            return [self]
        plain = replace(self, cycles="")
        return [
            replace(
                plain,
                epochs=cycle.epochs,
                learning_rate=cycle.learning_rate,
                image_size=cycle.image_size,
                initial_weights=self.initial_weights if number == 0 else "",  # later cycles start from the one before
            )
            for number, cycle in enumerate(parse_cycles(self.cycles))
        ]


CYCLE_FIELDS = {"epochs", "learning_rate", "image_size"}
KIND_WORDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}
BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
SETTINGS_ARE = "the settings: " + ", ".join(item.name for item in fields(TrainSettings))


@cache
def setting_types() -> dict[str, type]:
    """Each setting's name and type (str, int or float), in declaration order."""
    hints = typing.get_type_hints(TrainSettings)
    return {item.name: hints[item.name] for item in fields(TrainSettings)}


@cache
def setting_help() -> dict[str, str]:
    return {item.name: item.metadata["help"] for item in fields(TrainSettings)}


def checked_value(name: str, kind: type, value: object) -> str | int | float:
    """`value` as the setting's type: a float setting takes a whole number too; anything else is refused by name."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise ValueError(f"training setting {name} must be {KIND_WORDS[kind]}, not {value!r}")


def parse_assignment(text: str) -> tuple[str, str | int | float]:
    """'image_size=192' as ('image_size', 192), the value read as the setting's type; a clear error otherwise."""
    name, equals, raw = text.partition("=")
    name = name.strip().replace("-", "_")
    if not equals or not name:
        raise ValueError(f"{text!r} is not key=value (for instance image_size=192)")
    kind = setting_types().get(name)
    if kind is None:
        raise ValueError(f"no such training setting: {name} ({SETTINGS_ARE})")
    if kind is bool and raw.strip().lower() in BOOLEAN_WORDS:
        return name, BOOLEAN_WORDS[raw.strip().lower()]
    try:
        if kind is bool:
            raise ValueError
        return name, raw if kind is str else kind(raw)
    except ValueError:
        raise ValueError(f"training setting {name} must be {KIND_WORDS[kind]}, not {raw!r}") from None


def parse_channels(text: str) -> tuple[int, ...]:
    """'128 64 32 16 16' as the five decoder widths; a clear error otherwise."""
    words = text.replace(",", " ").split()
    if len(words) != 5 or not all(word.isdigit() and int(word) > 0 for word in words):
        raise ValueError(f"decoder_channels {text!r} must be five whole numbers above 0, widest first (smp's: 256 128 64 32 16)")
    return tuple(int(word) for word in words)


def _as_type(name: str, value: object) -> str | int | float | bool:
    return parse_assignment(f"{name}={value}")[1] if isinstance(value, str) else value


@dataclass(frozen=True)
class Cycle:
    epochs: int
    learning_rate: float
    image_size: int


def parse_cycles(text: str) -> list[Cycle]:
    """'60:0.002:128 35:0.001:192' as cycles; a clear error names the word that is wrong."""
    cycles = []
    for word in text.split():
        parts = word.split(":")
        try:
            if len(parts) != 3:
                raise ValueError
            cycle = Cycle(int(parts[0]), float(parts[1]), int(parts[2]))
        except ValueError:
            raise ValueError(f"cycle {word!r} is not epochs:peak learning rate:input side (for instance 30:0.0005:192)") from None
        if cycle.epochs < 1 or not 0 < cycle.learning_rate < 1 or cycle.image_size < 32 or cycle.image_size % 32:
            raise ValueError(
                f"cycle {word!r}: epochs must be at least 1, the learning rate between 0 and 1, and the input side a "
                "multiple of 32 (the U-Net halves it five times)"
            )
        cycles.append(cycle)
    if not cycles:
        raise ValueError("cycles is blank: give words epochs:peak learning rate:input side, or '' for one schedule")
    return cycles


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    settings: TrainSettings


def load_presets(folder: Path = PRESETS_DIR) -> dict[str, Preset]:
    """Every preset file of `folder` (NAME.toml), each checked against TrainSettings, `based_on` resolved."""
    raw = {path.stem: (path, tomllib.loads(path.read_text())) for path in sorted(folder.glob("*.toml"))}
    presets: dict[str, Preset] = {}

    def resolve(name: str, seen: tuple[str, ...] = ()) -> Preset:
        if name in presets:
            return presets[name]
        if name not in raw:
            raise ValueError(f"{raw[seen[-1]][0]}: based on {name!r}, which has no file in {folder}")
        path, document = raw[name]
        unknown = document.keys() - {"description", "based_on", "settings"}
        if unknown or not isinstance(document.get("description"), str):
            raise ValueError(f"{path}: give a description, optionally based_on and a [settings] table, not {sorted(unknown)}")
        if name in seen:
            raise ValueError(f"{path}: presets based on each other in a circle ({' -> '.join((*seen, name))})")
        base = resolve(document["based_on"], (*seen, name)).settings if "based_on" in document else TrainSettings()
        try:
            settings = base.with_overrides(**document.get("settings", {}))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from None
        presets[name] = Preset(name, document["description"], settings)
        return presets[name]

    for name in raw:
        resolve(name)
    return presets


PRESET_FILES = load_presets()
PRESETS: dict[str, TrainSettings] = {name: PRESET_FILES[name].settings for name in sorted(PRESET_FILES)}


def preset(name: str) -> TrainSettings:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def settings_for(choices: dict) -> TrainSettings:
    """The settings of choices["preset"] (demo when absent) with the other choices laid over them (None leaves the
    preset's); a clear error names a bad preset, setting or value."""
    overrides = dict(choices)
    return preset(overrides.pop("preset", None) or DEFAULT_PRESET).with_overrides(**overrides)
