"""A whole training step captured once as a CUDA graph and replayed (``task.cuda_graphs``).

The pattern of PyTorch's "whole-network capture" (torch.cuda.graphs docs: warm up on a side
stream, capture, then refill static inputs and replay) and of LeanRL's CudaGraphModule
(tensordict): one replay launches every kernel of the step (forward, backward, clipping,
optimizer steps, target updates) with one call, which is what small models (SAC's MLPs, a
stack of DQNs) are bound by.

The step function a trainer hands over must be capture-safe:
- its inputs are tensors it reads from fixed places (static buffers the caller refills with
  ``copy_`` before each call, parameters, replay storage): a replay reads the same addresses;
- it draws no random numbers (the caller draws them from the seeds' own generators into static
  buffers, so a captured run draws what an eager one does) and reads nothing back to the host
  (no ``.item()``, no branching on tensor values);
- its optimizers keep their step counts on the device (``build_role_optimizer(...,
  capturable=True)``) and their learning rates constant (no schedule): a Python float is frozen
  into the graph at capture (``capture_blockers`` says which specs qualify);
- its host-side effects (Python counters) are redone by ``host_effects`` after each replay,
  since a replay runs only the device work.

On the CPU, and before capture, the step runs eagerly: the same function on the same static
buffers, so a CPU test of the static-buffer step is a test of what the graph replays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

WARMUP_STEPS = 3
"""Eager steps before capture: they create optimizer state and let cuDNN/cuBLAS pick their
algorithms outside the graph (torch docs: warm up on a side stream; 3 in their example, 11 for
DDP). They are real training steps, not discarded ones."""


class CapturedStep:
    """``step()`` as a CUDA graph on a CUDA device after ``warmup`` eager calls; eager elsewhere.

    Each call returns what ``step`` returns. After capture these are the graph's static output
    tensors, overwritten by the next replay: clone what must outlive the next call.
    """

    def __init__(
        self,
        step: Callable[[], Any],
        device: str | torch.device,
        enabled: bool = True,
        warmup: int = WARMUP_STEPS,
        host_effects: Callable[[], None] | None = None,
    ):
        self.step, self.host_effects = step, host_effects
        self.device = torch.device(device)
        self.enabled = enabled and self.device.type == "cuda"
        self.warmup, self.calls = warmup, 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: Any = None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self) -> Any:
        self.calls += 1
        if not self.enabled:
            return self.step()
        if self.calls <= self.warmup:
            # Warm-up on a side stream, as the torch docs do before capture: the caching
            # allocator then keeps the warm-up's memory apart from the graph's pool.
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                outputs = self.step()
            torch.cuda.current_stream(self.device).wait_stream(stream)
            return outputs
        if self.graph is None:
            self.graph = torch.cuda.CUDAGraph()
            # Capture records the kernels without running them; the replay below runs this
            # call's step. The host effects ran once during capture, so they are not redone.
            with torch.cuda.graph(self.graph):
                self.outputs = self.step()
            self.graph.replay()
            return self.outputs
        self.graph.replay()
        if self.host_effects is not None:
            self.host_effects()
        return self.outputs


def static_like(tensor: torch.Tensor) -> torch.Tensor:
    """A static input buffer shaped and placed as ``tensor``, filled with it."""
    return tensor.detach().clone()


def refill(static: torch.Tensor, value: torch.Tensor) -> None:
    """Copy this call's input into its static buffer (the graph reads the buffer's address)."""
    static.copy_(value, non_blocking=True)
