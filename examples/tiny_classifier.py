"""Your own trainer: a two-layer classifier on synthetic data, roles ``body`` and ``head``.

Run it with ``python -m suite run examples/tiny-classifier.yaml --budget smoke`` from the
repository root (the directory that holds ``examples/``, so ``trainer: examples.tiny_classifier``
imports). A trainer is a module with ``Config`` (its settings, the ``task`` keys), ``roles`` and
``train``; README.md, "Your own trainer", says what each must do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from suite.optimizers import build_role_optimizer
from suite.run.context import RunContext


@dataclass
class Config:
    """Task settings: the experiment file's ``task`` and ``budgets`` keys."""

    steps: int = 300
    """optimizer steps (full-batch)."""
    samples: int = 512
    """points of the synthetic two-class problem (a noisy XOR of two features)."""
    hidden: int = 32
    """width of the body's hidden layer."""

    def validate(self) -> None:  # called when the file is loaded, before any run starts
        if self.steps < 1 or self.samples < 2 or self.hidden < 1:
            raise ValueError("steps, hidden must be >= 1 and samples >= 2")


def roles(config: Config) -> tuple[str, ...]:
    return ("body", "head")


def recorded_metrics(config: Config) -> tuple[str, ...]:  # optional: names checked at load
    return ("train/accuracy", "train/loss_final")


def train(config: Config, specs, ctx: RunContext):
    torch.manual_seed(ctx.seed)  # the same data and initial weights for every arm of a seed
    x = torch.randn(config.samples, 2)
    y = ((x[:, 0] * x[:, 1] > 0) ^ (torch.rand(config.samples) < 0.05)).long()
    body = nn.Sequential(nn.Linear(2, config.hidden), nn.Tanh())
    head = nn.Linear(config.hidden, 2)
    modules = {"body": body, "head": head}
    optimizers = {
        role: build_role_optimizer(role, specs[role], list(m.parameters()), [m])
        for role, m in modules.items()
    }
    for step in range(1, config.steps + 1):
        loss = nn.functional.cross_entropy(head(body(x)), y)
        ctx.check_finite(step, loss=loss)  # a NaN ends the run as "diverged", not "failed"
        for optimizer in optimizers.values():
            optimizer.zero_grad()
        loss.backward()
        for optimizer in optimizers.values():
            optimizer.step()
        ctx.progress(step, config.steps)
        if step % max(1, config.steps // 10) == 0 or step == config.steps:
            ctx.record(step, {"train/loss": loss.item()})
    accuracy = (head(body(x)).argmax(1) == y).float().mean().item()
    return ctx.result({"train/loss_final": loss.item(), "train/accuracy": accuracy})
