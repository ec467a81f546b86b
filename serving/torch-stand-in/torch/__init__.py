"""A stand-in for PyTorch in the serving image; it is not PyTorch.

TorchServe's Python worker (ts/protocol/otf_message_handler.py) imports torch at module level, only to recognise
torch.Tensor responses and torch.save them. The WMS handler answers with JSON (ONNX Runtime, no torch), so the image
carries this module instead of two or more gigabytes of PyTorch and its CUDA libraries. It is found after
site-packages (a .pth file), so a real torch, if one were installed, would win. Anything else that reaches for torch
fails with this explanation.
"""

__version__ = "0+wms.stand.in"
WHY = "the serving image has no PyTorch: its torch module is a stand-in that only lets TorchServe's worker start"


class Tensor:
    """Never instantiated: isinstance(response, torch.Tensor) is False for every response of the WMS handler."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError(WHY)


def save(*args, **kwargs):
    raise RuntimeError(WHY)


def __getattr__(name):
    raise AttributeError(f"torch.{name}: {WHY}")
