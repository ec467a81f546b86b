"""The levers that make a training step faster: bf16 autocast where the processor has fast kernels for it, and
torch.compile where it is asked for and works; each falls back to the plain way with one line that says why.

bf16 autocast halves the bytes every convolution moves and, on CPUs with bf16 dot-product instructions
(avx512_bf16 or AMX), lets oneDNN run bf16 kernels: on this project's 2-core AMD EPYC a mobilenet_v2 U-Net trains
1.3 to 1.6 times faster (benchmarks/results/cpu-levers.json). A CPU without those instructions would emulate bf16,
slower than fp32, so the features are detected, never assumed. Weights, optimizer state, losses, test scores and the
ONNX export stay fp32: autocast changes only what the convolutions compute in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from wms.training.settings import PRECISIONS

AUTO, BF16, FP32 = PRECISIONS
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
"""/proc/cpuinfo flags of the instructions that oneDNN's bf16 convolutions run on."""
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Precision:
    """What a training computes in, and the one line that says why."""

    name: str
    reason: str
    fell_back: bool = False
    """bf16 was asked for and cannot be had here."""

    @property
    def autocast(self) -> bool:
        return self.name == BF16


def resolve_precision(requested: str, device: torch.device, cpu_flags: frozenset[str] | None = None) -> Precision:
    """The precision to train in: `requested` where the device can run it fast, else fp32 with the reason.

    'auto' is bf16 on a CUDA GPU that supports it and on a CPU with bf16 instructions; 'bf16' asked for where neither
    is there falls back to fp32 and says so, and the training goes on.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision {requested!r} is not one of {', '.join(PRECISIONS)}")
    if requested == FP32:
        return Precision(FP32, "fp32, as the settings ask")
    support = _bf16_support(device, cpu_flags)
    if support is None:
        where = "this GPU" if device.type == "cuda" else f"this CPU ({', '.join(BF16_CPU_FLAGS)} not reported)"
        asked = "bf16 was asked for, but " if requested == BF16 else ""
        return Precision(FP32, f"fp32: {asked}{where} has no fast bf16 kernels", fell_back=requested == BF16)
    return Precision(BF16, f"bf16 autocast: {support}")


def _bf16_support(device: torch.device, cpu_flags: frozenset[str] | None) -> str | None:
    """What makes bf16 fast on `device` (in words), or None."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} supports bf16" if torch.cuda.is_bf16_supported() else None
    if device.type != "cpu":
        return None
    flags = cpu_flags if cpu_flags is not None else cpu_feature_flags()
    found = [flag for flag in BF16_CPU_FLAGS if flag in flags]
    return f"the CPU reports {', '.join(found)}" if found else None


def cpu_feature_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags as the kernel reports them (empty where there is no /proc/cpuinfo, as on macOS)."""
    return frozenset(_cpuinfo_field("flags", cpuinfo).split())


def cpu_model_name(cpuinfo: Path = CPUINFO) -> str:
    """The processor's name as the kernel reports it ("" where it does not): benchmarks name the machine they ran on."""
    return _cpuinfo_field("model name", cpuinfo)


def _cpuinfo_field(name: str, cpuinfo: Path) -> str:
    """The first processor's `name` field in /proc/cpuinfo."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


class CompiledForward:
    """A module's forward through torch.compile (inductor), or its eager forward once compiling has failed.

    Compiling happens at the first call, so that is where a failure shows (no C++ compiler, an operator inductor
    cannot lower): the batch is then run eagerly, `on_fallback` gets one line, and every later call is eager.
    Nothing has changed the weights when a compile fails, so the step goes on as if compiling had not been asked for.
    """

    def __init__(self, module: torch.nn.Module, on_fallback: Callable[[str], None]) -> None:
        self.module, self.on_fallback = module, on_fallback
        self._compiled: Callable | None = torch.compile(module)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self._compiled is None:
            return self.module(batch)
        try:
            return self._compiled(batch)
        except Exception as error:  # inductor raises many kinds; all of them mean: run it eagerly
            self._compiled = None
            first_line = (str(error).splitlines() or [""])[0][:200]
            self.on_fallback(f"torch.compile failed ({type(error).__name__}: {first_line}): training eagerly")
            return self.module(batch)
