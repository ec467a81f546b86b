"""Training a U-Net on the train split, choosing the best epoch on val, scoring it on test.

Plain PyTorch with no orchestration inside: the Dagster asset, the benchmarks and the tests all call `train`.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from wms.data.pairs import Pair
from wms.inference.imaging import read_mask, read_photo
from wms.inference.predict import Segmenter
from wms.inference.scores import ScoreAccumulator, SegmentationScores
from wms.training.augment import AugmentSettings
from wms.training.checkpoint import LAST, Progress, WeightAverage, resume_checkpoint, save_checkpoint
from wms.training.dataset import MeterDataset, Sample, load_sample
from wms.training.losses import loss_by_name
from wms.training.model import TorchBackend, load_model_weights, unet_for
from wms.training.settings import TrainSettings
from wms.training.speed import CompiledForward, Precision, resolve_precision

logger = logging.getLogger(__name__)


@dataclass
class TrainingResult:
    model: torch.nn.Module
    settings: TrainSettings
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    test_scores: SegmentationScores | None = None
    test_ious: list[float] = field(default_factory=list)
    seconds: float = 0.0
    resumed_at_epoch: int = 0
    stopped_early: bool = False
    checkpoint: Path | None = None
    """The last checkpoint written (the last cycle's), when the training kept checkpoints."""
    notes: list[str] = field(default_factory=list)
    """How the training ran where the machine decided it: the precision and why, a compile that fell back."""


EpochCallback = Callable[[int, dict[str, float]], None]
NoteCallback = Callable[[str], None]


@dataclass
class _Trainable:
    """What a training step changes, and what a checkpoint saves and restores."""

    model: torch.nn.Module
    average: WeightAverage
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    forward: Callable[[torch.Tensor], torch.Tensor]
    """The model's forward as a training step runs it: eager, or through torch.compile."""

    @classmethod
    def create(cls, settings: TrainSettings, steps: int, notes: _Notes, start_state: dict | None = None) -> _Trainable:
        device = resolve_device(settings.device)
        model = unet_for(settings)
        if settings.initial_weights:
            load_model_weights(model, Path(settings.initial_weights))
        if start_state is not None:
            model.load_state_dict(start_state)
        model = model.to(device, memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.learning_rate, total_steps=steps)
        forward = model
        if settings.compile:
            forward = CompiledForward(model, on_fallback=lambda line: notes.add(line, logging.WARNING))
        return cls(model, WeightAverage(model, settings.average_decay), optimizer, scheduler, forward)

    def parts(self) -> tuple:
        return self.model, self.average, self.optimizer, self.scheduler


def train(
    splits: dict[str, list[Pair]],
    settings: TrainSettings,
    on_epoch: EpochCallback | None = None,
    checkpoints: Path | None = None,
    on_note: NoteCallback | None = None,
) -> TrainingResult:
    """Train on splits['train'], keep the averaged weights of the epoch with the best val IoU, score them on test.

    With `cycles`, each schedule starts from the best weights of the one before, and the last one's best is kept.
    With `checkpoints`, every epoch is saved there and a training with the same settings resumes from it.
    `on_note` hears, once each, how the training runs where the machine decides it (bf16 or fp32 and why, a compile
    that fell back to eager); without it they go to this module's log.
    """
    _require_splits(splits)
    started = time.perf_counter()
    schedule = settings.schedule()
    precision = resolve_precision(settings.precision, resolve_device(settings.device))
    notes = _Notes(on_note)
    notes.add(precision.reason, logging.WARNING if precision.fell_back else logging.INFO)
    history: list[dict[str, float]] = []
    fitted, resumed_at = None, 0
    for number, cycle in enumerate(schedule, start=1):
        folder = cycle_checkpoints(checkpoints, number, len(schedule))
        params = cycle.as_params() | ({"cycles": settings.cycles, "cycle": number} if len(schedule) > 1 else {})
        start_state = fitted and fitted.progress.best_state
        run = _CycleRun(cycle, params, folder, precision, notes)
        fitted = _fit(splits, run, start_state, _shifted(on_epoch, len(history), number))
        resumed_at += fitted.resumed_at
        best_epoch = len(history) + fitted.progress.best_epoch
        history += fitted.progress.history
    best = copy.deepcopy(fitted.average).to("cpu", memory_format=torch.contiguous_format)  # for ONNX export
    best.load_state_dict(fitted.progress.best_state)
    result = TrainingResult(best.eval(), settings, history, best_epoch, resumed_at_epoch=resumed_at)
    result.stopped_early = fitted.stopped_early
    result.checkpoint = folder / LAST if folder else None
    result.notes = notes.lines
    result.test_scores, result.test_ious = evaluate(best, splits["test"], settings.image_size)
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class _Fitted:
    average: torch.nn.Module
    progress: Progress
    resumed_at: int
    stopped_early: bool


@dataclass(frozen=True)
class _CycleRun:
    """One one-cycle schedule: its settings, what its checkpoints are keyed on and where they go, how it computes."""

    settings: TrainSettings
    params: dict
    checkpoints: Path | None
    precision: Precision
    notes: _Notes


@dataclass
class _Notes:
    """How the training runs where the machine decided it, each line said once: to `say` (else this module's log)
    and kept for the result."""

    say: NoteCallback | None = None
    lines: list[str] = field(default_factory=list)

    def add(self, line: str, level: int = logging.INFO) -> None:
        if line in self.lines:
            return
        self.lines.append(line)
        if self.say:
            self.say(line)
        else:
            logger.log(level, line)


def _fit(splits: dict[str, list[Pair]], run: _CycleRun, start_state: dict | None, on_epoch: EpochCallback | None) -> _Fitted:
    """One one-cycle schedule, from `start_state` (the weights of a cycle before) when given; resumed if checkpointed."""
    settings, checkpoints = run.settings, run.checkpoints
    seed_everything(settings.seed)
    torch.set_num_threads(settings.threads)
    steps = settings.epochs * steps_per_epoch(len(splits["train"]), settings.batch_size)
    trainable = _Trainable.create(settings, steps, run.notes, start_state)
    progress = (checkpoints and resume_checkpoint(checkpoints, run.params, *trainable.parts())) or Progress()
    fitted = _Fitted(trainable.average.module, progress, progress.epoch, out_of_patience(progress, settings))
    if progress.epoch == settings.epochs or fitted.stopped_early:
        return fitted  # finished before: a rerun after a failure later on trains nothing again
    dataset, val = _prepared_samples(splits, settings)
    for epoch in range(progress.epoch + 1, settings.epochs + 1):
        metrics = _fit_epoch(trainable, dataset, val, run, epoch)
        _record(progress, epoch, metrics, trainable.average)
        if checkpoints:
            save_checkpoint(checkpoints, run.params, progress, *trainable.parts())
        if on_epoch:
            on_epoch(epoch, metrics)
        if out_of_patience(progress, settings):
            fitted.stopped_early = True
            break
    return fitted


def _prepared_samples(splits: dict[str, list[Pair]], settings: TrainSettings) -> tuple[MeterDataset, list[Sample]]:
    """The train split as augmented views at the input side, and the val split, both read into memory."""
    samples = {name: [load_sample(pair, max_side=4 * settings.image_size) for pair in splits[name]] for name in ("train", "val")}
    augment = AugmentSettings(
        zoom_probability=settings.zoom_probability,
        quarter_turn_probability=settings.quarter_turn_probability,
        max_angle=settings.max_angle,
    )
    return MeterDataset(samples["train"], settings.image_size, augment, settings.seed), samples["val"]


def cycle_checkpoints(checkpoints: Path | None, number: int, cycles: int) -> Path | None:
    """Where cycle `number` (from 1) keeps its checkpoints: a folder of its own when there are several cycles."""
    return checkpoints / f"cycle-{number}" if checkpoints and cycles > 1 else checkpoints


def out_of_patience(progress: Progress, settings: TrainSettings) -> bool:
    """Whether early stopping ends the training: `patience` epochs (when set) without a better val IoU."""
    return bool(settings.patience) and progress.epoch - progress.best_epoch >= settings.patience


def drops_last_batch(train_images: int, batch_size: int) -> bool:
    """Passes take full batches only, unless the whole split fits in one batch."""
    return train_images > batch_size


def steps_per_epoch(train_images: int, batch_size: int) -> int:
    """Optimizer steps in one pass."""
    return train_images // batch_size if drops_last_batch(train_images, batch_size) else 1


def _shifted(on_epoch: EpochCallback | None, done: int, cycle: int) -> EpochCallback | None:
    """The callback with epochs numbered over the whole training, and the cycle's number in the metrics."""
    if on_epoch is None or (done == 0 and cycle == 1):
        return on_epoch
    return lambda epoch, metrics: on_epoch(done + epoch, metrics | {"cycle": float(cycle)})


def _fit_epoch(trainable: _Trainable, dataset: MeterDataset, val: list[Sample], run: _CycleRun, epoch: int) -> dict:
    """One pass over the train split, then, on the epochs that validate, the averaged model scored on val."""
    settings = run.settings
    dataset.set_epoch(epoch)
    started = time.perf_counter()
    loader = _loader(dataset, settings, epoch)
    train_loss = _train_epoch(trainable, loader, loss_by_name(settings.loss), run.precision)
    metrics = {
        "train_loss": train_loss,
        "lr": trainable.scheduler.get_last_lr()[0],
        "train_pass_seconds": time.perf_counter() - started,
    }
    if validates(epoch, settings):
        started = time.perf_counter()
        scores = evaluate_samples(trainable.average.module, val, settings.image_size, run.precision)
        metrics |= {"val_iou": scores.mean_iou, "val_dice": scores.mean_dice, "val_seconds": time.perf_counter() - started}
    return metrics


def validates(epoch: int, settings: TrainSettings) -> bool:
    """Whether `epoch` (from 1) scores val: every `validate_every`-th epoch, and each of the last third (the last
    epoch always belongs to it)."""
    return epoch % max(1, settings.validate_every) == 0 or epoch > settings.epochs * 2 // 3


def _record(progress: Progress, epoch: int, metrics: dict, average: WeightAverage) -> None:
    """Note the epoch; keep a copy of the averaged weights when its val IoU is the best so far."""
    progress.epoch = epoch
    progress.history.append(metrics)
    if metrics.get("val_iou", -1.0) > progress.best_iou:
        progress.best_iou, progress.best_epoch = metrics["val_iou"], epoch
        progress.best_state = {key: value.detach().cpu().clone() for key, value in average.module.state_dict().items()}


def seed_everything(seed: int) -> None:
    """Same seed, same weights, order and augmentations (on the CPU; cuDNN kernels may still differ slightly)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when a GPU is present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


MODEL_SOURCES = ("wms/inference/", "wms/data/", "wms/training/")
"""The code that shapes a model, as paths from the project root: how photos are read, split and augmented, the network,
its training and export, and how it is scored. The reuse key hashes it (code_fingerprint), the code sensor retrains
when a commit changes it, and the train workflow runs on its changes. The asset's settings reach training whole and
are keyed on their own."""


INSTALL_ROOT = Path(__file__).resolve().parents[2]
"""The folder that holds the wms package: a checkout, or site-packages where a wheel is installed."""


def code_fingerprint(install_root: Path = INSTALL_ROOT) -> str:
    """A hash of the model's sources (MODEL_SOURCES) under `install_root`, where Python imports wms from (a checkout
    or an installed wheel): a different fingerprint may train a different model."""
    digest = hashlib.sha256()
    for folder in MODEL_SOURCES:
        for source in sorted((install_root / folder).rglob("*.py")):
            digest.update(source.relative_to(install_root).as_posix().encode() + source.read_bytes())
    return digest.hexdigest()[:16]


def _require_splits(splits: dict[str, list[Pair]]) -> None:
    empty = [name for name in ("train", "val", "test") if not splits.get(name)]
    if empty:
        raise ValueError(f"the {', '.join(empty)} split(s) hold no images: add images to the data set (at least about 20)")


def _loader(dataset: MeterDataset, settings: TrainSettings, epoch: int) -> DataLoader:
    """The epoch's batches: the order depends only on the seed and the epoch, so a resumed run sees the same."""
    return DataLoader(
        dataset,
        batch_size=settings.batch_size,
        shuffle=True,
        drop_last=drops_last_batch(len(dataset), settings.batch_size),
        num_workers=settings.workers,
        generator=torch.Generator().manual_seed(settings.seed * 100_003 + epoch),
        pin_memory=resolve_device(settings.device).type == "cuda",
    )


def _train_epoch(trainable: _Trainable, loader: DataLoader, loss_function, precision: Precision) -> float:
    """One pass over the loader with channels_last batches, in bf16 autocast when `precision` says so."""
    model, average, optimizer, scheduler = trainable.parts()
    model.train()
    device = next(model.parameters()).device
    losses = []
    for images, masks in loader:
        images, masks = _to_device(images, device), masks.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision.autocast):
            logits = trainable.forward(images)
        loss = loss_function(logits.float(), masks)
        loss.backward()
        optimizer.step()
        scheduler.step()
        average.update(model)
        losses.append(loss.item())
    return float(np.mean(losses))


def _to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """channels_last: faster convolutions on CUDA and, measured here, about 1.2-1.7x on the CPU too."""
    return images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


def evaluate_samples(
    model: torch.nn.Module, samples: list[Sample], image_size: int, precision: Precision | None = None
) -> SegmentationScores:
    """Scores of the whole inference (both looks) on samples held in memory, at their stored resolution; in bf16
    autocast when `precision` says so (validation: it only ranks the epochs)."""
    segmenter = Segmenter(backend=TorchBackend(model.eval(), bf16=bool(precision and precision.autocast)), image_size=image_size)
    accumulator = ScoreAccumulator.empty()
    for start in range(0, len(samples), 16):
        chunk = samples[start : start + 16]
        for (_, mask), sample in zip(segmenter.masks_batch([s.photo for s in chunk]), chunk, strict=True):
            accumulator.add(mask, sample.mask)
    return accumulator.scores()


def evaluate(model: torch.nn.Module, pairs: list[Pair], image_size: int) -> tuple[SegmentationScores, list[float]]:
    """Scores at each photo's own resolution, as a user of the model sees them, and the IoU of every photo."""
    segmenter = Segmenter(backend=TorchBackend(model.eval()), image_size=image_size)
    accumulator = ScoreAccumulator.empty()
    for pair in pairs:
        accumulator.add(segmenter.mask(read_photo(pair.image)), read_mask(pair.mask))
    return accumulator.scores(), accumulator.ious
