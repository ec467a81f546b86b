"""Training a U-Net on the train split, choosing the best epoch on val, scoring it on test."""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from wms.data import Pair
from wms.dataset import MeterDataset
from wms.imaging import read_mask, read_photo
from wms.losses import bce_dice_loss
from wms.metrics import SegmentationScores, iou, score_masks
from wms.model import build_unet
from wms.predict import Segmenter, TorchBackend


@dataclass(frozen=True)
class TrainSettings:
    encoder: str = "mobilenet_v2"
    image_size: int = 128
    epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 2e-3
    seed: int = 0
    threads: int = 2
    device: str = "auto"

    def as_params(self) -> dict[str, str | int | float]:
        return asdict(self)


@dataclass
class TrainingResult:
    model: torch.nn.Module
    settings: TrainSettings
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    test_scores: SegmentationScores | None = None
    seconds: float = 0.0


EpochCallback = Callable[[int, dict[str, float]], None]


def train(splits: dict[str, list[Pair]], settings: TrainSettings, on_epoch: EpochCallback | None = None) -> TrainingResult:
    """Train on splits['train'], keep the weights of the epoch with the best val IoU, score them on splits['test']."""
    _require_splits(splits)
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    started = time.perf_counter()
    device = resolve_device(settings.device)
    model = build_unet(settings.encoder).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    loader = DataLoader(
        MeterDataset(splits["train"], settings.image_size, augment=True, seed=settings.seed),
        batch_size=settings.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(settings.seed),
    )
    val_set = MeterDataset(splits["val"], settings.image_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.learning_rate, total_steps=settings.epochs * len(loader)
    )
    result = TrainingResult(model=model, settings=settings)
    best_iou, best_state = -1.0, None
    for epoch in range(1, settings.epochs + 1):
        metrics = {"train_loss": _train_epoch(model, loader, optimizer, scheduler), "val_iou": _letterboxed_iou(model, val_set)}
        result.history.append(metrics)
        if on_epoch:
            on_epoch(epoch, metrics)
        if metrics["val_iou"] > best_iou:
            best_iou, best_state, result.best_epoch = metrics["val_iou"], copy.deepcopy(model.state_dict()), epoch
    model.load_state_dict(best_state)
    result.test_scores = evaluate(model.eval(), splits["test"], settings.image_size)
    result.model = model.cpu()
    result.seconds = time.perf_counter() - started
    return result


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when a GPU is present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def code_fingerprint() -> str:
    """A hash of the wms library's source: a different fingerprint may train a different model."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).resolve().parent.glob("*.py")):
        digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()[:16]


def _require_splits(splits: dict[str, list[Pair]]) -> None:
    empty = [name for name in ("train", "val", "test") if not splits.get(name)]
    if empty:
        raise ValueError(f"the {', '.join(empty)} split(s) hold no images: add images to the data set (at least about 20)")


def _train_epoch(model, loader, optimizer, scheduler) -> float:
    """One pass over the loader; on CUDA in bf16 autocast with channels_last batches."""
    model.train()
    device = next(model.parameters()).device
    losses = []
    for images, masks in loader:
        images, masks = _to_device(images, device), masks.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(images)
        loss = bce_dice_loss(logits.float(), masks)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return float(np.mean(losses))


@torch.inference_mode()
def _letterboxed_iou(model, dataset: MeterDataset) -> float:
    """Mean IoU at the model's input size: cheap enough for every epoch."""
    model.eval()
    device = next(model.parameters()).device
    predictions = torch.cat([(model(_to_device(chunk, device)) > 0).cpu() for chunk in dataset.images.split(16)]).numpy()
    return float(np.mean([iou(p, t) for p, t in zip(predictions, dataset.masks.numpy() > 0.5, strict=True)]))


def _to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else images


def evaluate(model: torch.nn.Module, pairs: list[Pair], image_size: int) -> SegmentationScores:
    """Per-image IoU and Dice at each photo's own resolution, as a user of the model sees them."""
    segmenter = Segmenter(backend=TorchBackend(model), image_size=image_size)
    predictions = [segmenter.mask(read_photo(pair.image)) for pair in pairs]
    return score_masks(predictions, [read_mask(pair.mask) for pair in pairs])
