"""A generative run's checkpoint (DCGAN, VAE): the one place its keys are written and read.

A lone run (gans/dcgan.py, vae/vae.py) and a stacked seed (gans/stacked.py, vae/stacked.py)
checkpoint the same state, so that an interrupted stack resumes as a stack or seed by seed and a
lone run's checkpoint joins a stack: the networks' weights (with batch-norm statistics), each
role's RoleOptimizer state (moments, step counts, schedule), the DataOrder position, the partial
loss sums of the current log window (an evaluation interval need not be a multiple of
``log_every``) and the last evaluation. ``ctx.save_checkpoint`` adds the curves and the random
generators' states.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from suite.run.stacking import (
    SeedStreams,
    StackedOptimizer,
    lone_rng,
    seed_optimizers,
    stack_details,
)


@dataclass
class TrainState:
    """One seed's checkpointed state; subclasses name the networks and the loss-sum key."""

    NETWORKS: ClassVar[tuple[str, ...]] = ()
    """checkpoint keys of the networks' state dicts, e.g. ("generator", "discriminator")."""
    LOSS_KEY: ClassVar[str] = "loss_sums"
    """checkpoint key of the partial loss sums (kept as the format has always spelled it)."""

    weights: dict[str, dict[str, torch.Tensor]]
    """network name -> module state dict."""
    optimizers: dict[str, dict[str, Any]]
    """role -> RoleOptimizer.state_dict()."""
    data_order: dict[str, int]
    """DataOrder.state_dict()."""
    loss_sums: torch.Tensor
    """loss sums of the current log window (on the CPU in a checkpoint)."""
    step: int = 0
    since_log: int = 0
    """steps in the current log window."""
    last_eval: dict[str, float] = field(default_factory=dict)
    early_sums: torch.Tensor | None = None
    """the DCGAN's early-window sums (gans/dcgan.py ``early_update``); None for the VAE, whose
    checkpoint then has no such key, and for a DCGAN checkpoint written before they existed."""

    def restore(self, modules: dict[str, nn.Module], optimizers: dict, order) -> None:
        """Load this state into a lone run's live objects (modules by network name)."""
        for name in self.NETWORKS:
            modules[name].load_state_dict(self.weights[name])
        for role, optimizer in optimizers.items():
            optimizer.load_state_dict(self.optimizers[role])
        order.load_state_dict(self.data_order)

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's ``state`` (the format resume tests pin down)."""
        state = {
            "step": self.step,
            **{name: self.weights[name] for name in self.NETWORKS},
            "optimizers": self.optimizers,
            "data_order": self.data_order,
            self.LOSS_KEY: self.loss_sums.detach().cpu(),
            "since_log": self.since_log,
            "last_eval": self.last_eval,
        }
        if self.early_sums is not None:
            state["early_sums"] = self.early_sums.detach().cpu()
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> TrainState:
        """``state_dict``'s inverse (what ``ctx.load_checkpoint`` returns)."""
        return cls(
            weights={name: state[name] for name in cls.NETWORKS},
            optimizers=state["optimizers"],
            data_order=state["data_order"],
            loss_sums=state[cls.LOSS_KEY],
            step=state["step"],
            since_log=state["since_log"],
            last_eval=state["last_eval"],
            early_sums=state.get("early_sums"),
        )

    @classmethod
    def load(cls, ctx) -> TrainState | None:
        """The run's last checkpoint (``ctx.load_checkpoint``), or None when it starts fresh."""
        state = ctx.load_checkpoint()
        return None if state is None else cls.from_state_dict(state)


def resume_point(states: list[TrainState | None], sums_shape: tuple[int, ...], device):
    """Where a training loop starts, for seeds whose checkpoints stand at one step (``states``,
    None for a fresh start): the step, the steps in the current log window, each seed's loss sums
    of that window, shape (S, *sums_shape), and each seed's last evaluation."""
    if states[0] is None:
        sums = torch.zeros(len(states), *sums_shape, device=device)
        return 0, 0, sums, [{} for _ in states]
    sums = torch.stack([state.loss_sums for state in states]).to(device)
    return states[0].step, states[0].since_log, sums, [state.last_eval for state in states]


@dataclass
class LoneSeed:
    """A lone run as a training loop (dcgan.train_seeds, vae.train_seeds) sees it: one seed, on
    the process's random generators. A trainer's ``Lone`` adds the model and its step;
    ``StackedSeeds`` is the same for the S seeds of a stack."""

    modules: dict[str, nn.Module]
    """the networks by their TrainState names."""
    optimizers: dict
    """role -> RoleOptimizer."""
    order: Any
    """the run's gans/data.py DataOrder."""
    stacked: ClassVar[dict | None] = None
    """what a result's ``details.stacked`` says (a lone run has none)."""

    def seed_state(self, i: int) -> dict[str, Any]:
        """The TrainState fields of the networks, optimizers and data order."""
        return {
            "weights": {name: module.state_dict() for name, module in self.modules.items()},
            "optimizers": {role: o.state_dict() for role, o in self.optimizers.items()},
            "data_order": self.order.state_dict(),
        }

    def rng(self, i: int) -> None:
        """The generator states to checkpoint: None, the process's own."""
        return None

    def role_optimizers(self) -> dict:
        return self.optimizers


@dataclass
class StackedSeeds:
    """The seeds of a stack as a training loop sees them (LoneSeed's methods for S seeds), each
    checkpointed in its lone run's format with its lone run's generator states."""

    stack: Any
    """the stacked model (gans/stacked.py, vae/stacked.py): ``seeds``, ``seed_state_dict``,
    ``split`` and ``join``."""
    optimizers: dict[str, StackedOptimizer]
    streams: SeedStreams
    role_params: dict[str, list[torch.Tensor]]
    """each role's stacked parameters."""
    method: str
    """the stacking method (suite/trainers.py: STACKED)."""

    @property
    def stacked(self) -> dict:
        return stack_details(self.stack.seeds, self.method)

    def seed_state(self, i: int) -> dict[str, Any]:
        return {
            "weights": self.stack.seed_state_dict(i),
            "optimizers": seed_optimizers(self.optimizers, self.role_params, i, self.stack),
            "data_order": self.streams.orders[i].state_dict(),
        }

    def rng(self, i: int) -> dict:
        return lone_rng(self.streams.generators[i])

    def role_optimizers(self) -> dict:
        return {role: o.inner for role, o in self.optimizers.items()}
