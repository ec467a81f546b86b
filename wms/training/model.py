"""U-Net models from segmentation-models-pytorch, chosen by encoder name from a registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import segmentation_models_pytorch as smp
import torch

from wms.training.settings import TrainSettings, parse_channels

SMP_DECODER_CHANNELS = (256, 128, 64, 32, 16)


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


def build_unet(
    encoder: str, encoder_weights: str | Path | None = None, decoder_channels: tuple[int, ...] = SMP_DECODER_CHANNELS
) -> torch.nn.Module:
    """A U-Net with 3 input channels and one output channel (logits of the digit window), its decoder stages
    `decoder_channels` wide.

    ImageNet weights cannot be downloaded on the project's machines, so encoders start from random weights unless
    `encoder_weights` names a file with a state dict of the encoder (for example timm's or torchvision's ImageNet
    weights of the same architecture, saved with torch.save).
    """
    if encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {encoder!r}: choose one of {', '.join(sorted(ENCODERS))}")
    model = smp.Unet(
        encoder_name=ENCODERS[encoder].smp_name,
        encoder_weights=None,
        in_channels=3,
        classes=1,
        decoder_channels=tuple(decoder_channels),
    )
    if encoder_weights:
        load_encoder_weights(model, Path(encoder_weights))
    return model


def unet_for(settings: TrainSettings) -> torch.nn.Module:
    """The U-Net that `settings` train: their encoder (and its starting weights, if any) and decoder widths."""
    return build_unet(settings.encoder, settings.encoder_weights or None, parse_channels(settings.decoder_channels))


def load_model_weights(model: torch.nn.Module, path: Path) -> None:
    """Start the whole U-Net from earlier weights: a state dict, or a WMS training checkpoint (its best weights)."""
    if not path.is_file():
        raise FileNotFoundError(f"initial weights {path} do not exist: give a state dict or a training checkpoint (last.pt)")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(state, dict) and "progress" in state:  # a checkpoint written by wms.training.checkpoint
        state = state["progress"]["best_state"] or state["average"]
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"{path} does not fit this U-Net (another encoder?): {str(error).splitlines()[0]}") from error


def load_encoder_weights(model: smp.Unet, path: Path) -> None:
    """Load an encoder state dict; every encoder weight must be found (classifier heads in the file are ignored)."""
    if not path.is_file():
        raise FileNotFoundError(f"encoder weights {path} do not exist: give the path of a state dict saved with torch.save")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    missing, _ = torch.nn.Module.load_state_dict(model.encoder, state, strict=False)  # smp's override returns nothing
    if missing:
        raise ValueError(
            f"{path} lacks {len(missing)} weights of the encoder (first: {missing[0]}): is it the same architecture?"
        )


def count_parameters(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


class TorchBackend:
    """A wms.inference.predict backend that runs a PyTorch module (training's evaluation, the ONNX export's check);
    in bf16 autocast with `bf16` (validation during training), else in fp32 like the exported model."""

    def __init__(self, module, bf16: bool = False) -> None:
        self._module, self._bf16 = module.eval(), bf16

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        device = next(self._module.parameters()).device
        inputs = torch.from_numpy(batch).to(device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=self._bf16):
            return self._module(inputs).float().cpu().numpy()
