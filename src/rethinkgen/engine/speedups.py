"""The GPU switches of a run: bf16 autocast, channels_last memory format and ``torch.compile``.

Each is ``off``, on, or ``auto``. ``auto`` is off on the CPU, so CPU runs compute exactly what they
computed before these switches existed. On a CUDA GPU ``auto`` turns on bf16 autocast (where the GPU
supports bf16) and channels_last for models with convolutions, and leaves compile off. Those CUDA defaults
are the usual choices for recent NVIDIA GPUs, not measurements of this project: they stay unmeasured until
``benchmarks/gpu.py`` has been run on a GPU (see README, "GPU").

bf16 changes the numbers a run produces, so a run with bf16 is a different run: the resolved ``amp``
value is part of the run id unless it is ``off``. channels_last and compile change only the order of
floating-point operations, like the device, and are not part of the run id.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from rethinkgen.errors import RethinkgenError


def device_type(device: str) -> str:
    """``cpu``, ``cuda`` or ``mps`` for a ``--device`` value; ``auto`` is cuda when a GPU is visible."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device.split(":")[0]


def resolve_amp(amp: str, device: str) -> str:
    """``off`` or ``bf16``: ``auto`` is bf16 on a CUDA GPU that supports it, off everywhere else."""
    if amp != "auto":
        return amp
    on_cuda = device_type(device) == "cuda" and torch.cuda.is_available()
    return "bf16" if on_cuda and torch.cuda.is_bf16_supported() else "off"


def has_convolutions(model: nn.Module) -> bool:
    """Whether ``model`` holds a convolution (channels_last and the CPU evaluation plan apply to it).

    Args:
        model: the network.
    """
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())


@dataclass(frozen=True)
class Speedups:
    """The switches as they apply to one run on one device."""

    amp: bool = False
    channels_last: bool = False
    compile: bool = False

    @classmethod
    def resolve(cls, amp: str, channels_last: str, compile: str, device: torch.device, model: nn.Module):
        """``amp`` is already resolved (by ``RunConfig.resolved``); ``auto`` switches are decided here."""
        on_cuda = device.type == "cuda"
        if amp == "bf16" and on_cuda and not torch.cuda.is_bf16_supported():
            raise RethinkgenError(f"amp 'bf16' requested but {torch.cuda.get_device_name(device)} does not support "
                                  "bf16; use --amp off")
        if channels_last == "auto":
            channels_last = "on" if on_cuda and has_convolutions(model) else "off"
        if compile == "auto":
            compile = "off"  # compiling takes tens of seconds per model and its pay-off is unmeasured
        return cls(amp=amp == "bf16", channels_last=channels_last == "on", compile=compile == "on")

    def autocast(self, device: torch.device):
        """bf16 autocast on ``device`` when amp is on; otherwise nothing at all."""
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` in channels_last memory format when that switch is on, else as they are.

        Args:
            images: a batch, ``[N, C, H, W]``.
        """
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    @staticmethod
    def full_precision(logits: torch.Tensor) -> torch.Tensor:
        """bf16/fp16 outputs of autocast in float32; float32 and float64 outputs as they are."""
        return logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits

    def describe(self) -> dict:
        """What a run's summary records about the switches."""
        return {"precision": "bf16 autocast" if self.amp else "fp32",
                "memory_format": "channels_last" if self.channels_last else "contiguous", "compiled": self.compile}
