"""The device a grid runs on, and the speed settings that depend on it."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return device


@dataclass(frozen=True)
class SpeedSettings:
    """The speed settings a run applies on its device, after the device gate (speed_settings)."""

    device_type: str
    """autocast's device type: the run's, "cuda" or "cpu"."""
    amp: bool
    """bf16 autocast for the forward passes."""
    channels_last: bool
    """channels_last memory format for modules and batches."""
    compile: bool
    """torch.compile the modules."""

    def autocast(self, cache_enabled: bool = True):
        """bf16 autocast on the run's device type, or nothing when ``amp`` is off.

        :param cache_enabled: autocast's cache of the bf16 copies of weights within one region.
            False inside a CUDA graph capture (suite/run/graphs.py), as torch's CUDA-graphs
            notes ask: cached casts made during capture would outlive it. Forward values are the
            same either way; the gradient of a weight used twice in one region (the DCGAN
            discriminator on real and fake images) differs in rounding: cached, the two uses'
            gradients are summed in bf16 before the cast back; uncached, in float32 after it.
        """
        if self.amp:
            return torch.autocast(
                self.device_type, dtype=torch.bfloat16, cache_enabled=cache_enabled
            )
        return contextlib.nullcontext()

    def memory_format(self, module: nn.Module) -> torch.memory_format:
        """channels_last where it is on, except for a compiled module with transposed
        convolutions: inductor's meta kernel predicts contiguous gradient strides for a
        channels_last ConvTranspose2d backward on CUDA, and the compiled step fails its
        ``assert_size_stride`` (pytorch/pytorch#171622, seen with torch 2.11 on an H200: issue
        13). Such a module (the DCGAN generator, the VAE decoder) runs compiled in the default
        format; the others keep channels_last, and every module keeps compile and autocast."""
        if not self.channels_last:
            return torch.contiguous_format
        if self.compile and any(isinstance(m, nn.ConvTranspose2d) for m in module.modules()):
            return torch.contiguous_format
        return torch.channels_last

    def place(self, module: nn.Module, device: str) -> nn.Module:
        """Move ``module`` to ``device`` in its memory format (``memory_format``); return what
        runs it: the module itself, or its torch.compile wrapper (which shares the module's
        parameters)."""
        module.to(device, memory_format=self.memory_format(module))
        return torch.compile(module) if self.compile else module


def speed_settings(config, device: str) -> SpeedSettings:
    """The device gate: a config's ``amp``, ``channels_last`` and ``compile`` apply on CUDA, and
    on the CPU only with ``cpu_speed_settings``; elsewhere all three are off. Past this gate the
    CUDA and CPU paths share all code but the autocast device type.

    :param config: a trainer Config with the four fields (dcgan.Config, vae.Config).
    """
    device_type = torch.device(device).type
    on = device_type == "cuda" or (device_type == "cpu" and config.cpu_speed_settings)
    return SpeedSettings(
        device_type,
        amp=on and config.amp,
        channels_last=on and config.channels_last,
        compile=on and config.compile,
    )
