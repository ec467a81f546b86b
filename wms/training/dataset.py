"""Photos and masks held in memory (the data sets are small), served to PyTorch as augmented square views."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from wms.data.pairs import Pair
from wms.inference.imaging import bounding_box, normalize, read_mask, read_photo
from wms.training.augment import AugmentSettings, augmented_view


@dataclass(frozen=True)
class Sample:
    """A photo (uint8 RGB), its mask (bool) and the window's bounding box, at the resolution training reads."""

    photo: np.ndarray
    mask: np.ndarray
    window: list[int] | None


def load_sample(pair: Pair, max_side: int | None = None) -> Sample:
    """Read a pair, shrinking it so that its long side is at most `max_side` (memory; finer detail is not used)."""
    photo, mask = read_photo(pair.image), read_mask(pair.mask)
    if mask.shape != photo.shape[:2]:
        raise ValueError(f"{pair.name}: mask is {mask.shape[1]}x{mask.shape[0]}, photo {photo.shape[1]}x{photo.shape[0]}")
    if max_side and max(photo.shape[:2]) > max_side:
        scale = max_side / max(photo.shape[:2])
        size = (max(1, round(photo.shape[1] * scale)), max(1, round(photo.shape[0] * scale)))
        photo = np.asarray(Image.fromarray(photo).resize(size, Image.BILINEAR))
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.BILINEAR)) > 127
    return Sample(photo=photo, mask=mask, window=bounding_box(mask))


class MeterDataset(Dataset):
    """Random views of the samples: item i of epoch e is the same for the same seed, in any worker."""

    def __init__(self, samples: list[Sample], image_size: int, augment: AugmentSettings, seed: int = 0) -> None:
        self.samples, self.image_size, self.augment, self.seed = samples, image_size, augment, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.samples[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, mask = augmented_view(sample.photo, sample.mask, sample.window, self.image_size, rng, self.augment)
        return torch.from_numpy(normalize(image[None])[0]), torch.from_numpy(mask[None].astype(np.float32))
