"""PyTorch data sets of letterboxed photos and masks, held in memory (the data sets here are small)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from wms.data import Pair
from wms.imaging import letterbox_image, letterbox_mask, normalize, read_mask, read_photo


class MeterDataset(Dataset):
    def __init__(self, pairs: list[Pair], image_size: int, augment: bool = False, seed: int = 0) -> None:
        squares = [letterbox_image(read_photo(pair.image), image_size)[0] for pair in pairs]
        self.images = torch.from_numpy(normalize(np.stack(squares))) if squares else torch.empty(0)
        masks = [letterbox_mask(read_mask(pair.mask), image_size) for pair in pairs]
        self.masks = torch.from_numpy(np.stack(masks)[:, None].astype(np.float32)) if masks else torch.empty(0)
        self.augment = augment
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.images[index], self.masks[index]
        if self.augment and torch.rand(1, generator=self.generator).item() < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
        return image, mask
