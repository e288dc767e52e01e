"""Optimizers that misbehave on purpose, named in test configs as ``tests.helpers:ClassName``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from suite.result import Result

# The offline data beside the clone (CI clones with shared/ beside it).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"offline data folder {SHARED_DATA} is absent"
)


class NaNAfterSteps(torch.optim.SGD):
    """SGD that writes NaN into the parameters at its ``nan_at``-th step (divergence tests)."""

    def __init__(self, params, lr=0.01, nan_at: int = 3):
        super().__init__(params, lr=lr)
        self.nan_at, self.calls = nan_at, 0

    @torch.no_grad()
    def step(self, closure=None):
        self.calls += 1
        loss = super().step(closure)
        if self.calls >= self.nan_at:
            for group in self.param_groups:
                for p in group["params"]:
                    p.fill_(float("nan"))
        return loss


class FailsAtStep(torch.optim.SGD):
    """SGD that raises at its ``fail_at``-th step (a run that fails must not stop the grid)."""

    def __init__(self, params, lr=0.01, fail_at: int = 2):
        super().__init__(params, lr=lr)
        self.fail_at, self.calls = fail_at, 0

    def step(self, closure=None):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise RuntimeError("injected failure")
        return super().step(closure)


class OutOfMemoryAtStep(torch.optim.SGD):
    """SGD that raises torch.OutOfMemoryError at its ``oom_at``-th step, as CUDA does when a
    run needs more GPU memory than there is (it must fail that run, not the grid)."""

    def __init__(self, params, lr=0.01, oom_at: int = 2):
        super().__init__(params, lr=lr)
        self.oom_at, self.calls = oom_at, 0

    def step(self, closure=None):
        self.calls += 1
        if self.calls >= self.oom_at:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().step(closure)


class KilledAtStep(torch.optim.SGD):
    """SGD whose process SIGKILLs itself at the ``kill_at``-th step, as the kernel's OOM killer
    does: no exception, no result written; the runner must record the run as failed."""

    def __init__(self, params, lr=0.01, kill_at: int = 2):
        super().__init__(params, lr=lr)
        self.kill_at, self.calls = kill_at, 0

    def step(self, closure=None):
        import os
        import signal

        self.calls += 1
        if self.calls >= self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().step(closure)


def constructed_result(arm: str, seed: int, status: str, metrics: dict[str, float]) -> Result:
    """A Result of experiment "e" at the quick budget, as the claim tests construct them."""
    return Result(
        run_id=f"{arm}-{seed}",
        experiment="e",
        arm=arm,
        seed=seed,
        budget="quick",
        trainer="dqn",
        task={},
        optimizers={},
        status=status,
        metrics=metrics,
    )
