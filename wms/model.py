"""U-Net models from segmentation-models-pytorch, chosen by encoder name from a registry."""

from __future__ import annotations

from dataclasses import dataclass

import segmentation_models_pytorch as smp
import torch


@dataclass(frozen=True)
class EncoderSpec:
    smp_name: str
    description: str


ENCODERS: dict[str, EncoderSpec] = {
    "resnet34": EncoderSpec("resnet34", "24.4 M parameters; the quality choice on a GPU"),
    "resnet18": EncoderSpec("resnet18", "14.3 M parameters"),
    "mobilenet_v2": EncoderSpec("mobilenet_v2", "6.6 M parameters; fast on the CPU"),
    "efficientnet-b0": EncoderSpec("efficientnet-b0", "6.3 M parameters; fastest CPU inference"),
}


def build_unet(encoder: str) -> torch.nn.Module:
    """A U-Net with 3 input channels and one output channel (logits of the digit window)."""
    if encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {encoder!r}: choose one of {', '.join(sorted(ENCODERS))}")
    # ImageNet weights cannot be downloaded on the project's machines: encoders start from random weights.
    return smp.Unet(encoder_name=ENCODERS[encoder].smp_name, encoder_weights=None, in_channels=3, classes=1)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
