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

    @classmethod
    def capture(
        cls,
        modules: dict[str, nn.Module],
        optimizers: dict,
        order,
        loss_sums: torch.Tensor,
        step: int,
        since_log: int,
        last_eval: dict[str, float],
    ) -> TrainState:
        """A lone run's state from its live objects (modules by network name)."""
        return cls(
            weights={name: modules[name].state_dict() for name in cls.NETWORKS},
            optimizers={role: o.state_dict() for role, o in optimizers.items()},
            data_order=order.state_dict(),
            loss_sums=loss_sums,
            step=step,
            since_log=since_log,
            last_eval=last_eval,
        )

    def restore(self, modules: dict[str, nn.Module], optimizers: dict, order) -> None:
        """Load this state into a lone run's live objects (``capture``'s inverse)."""
        for name in self.NETWORKS:
            modules[name].load_state_dict(self.weights[name])
        for role, optimizer in optimizers.items():
            optimizer.load_state_dict(self.optimizers[role])
        order.load_state_dict(self.data_order)

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's ``state`` (the format resume tests pin down)."""
        return {
            "step": self.step,
            **{name: self.weights[name] for name in self.NETWORKS},
            "optimizers": self.optimizers,
            "data_order": self.data_order,
            self.LOSS_KEY: self.loss_sums.detach().cpu(),
            "since_log": self.since_log,
            "last_eval": self.last_eval,
        }

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
        )

    @classmethod
    def load(cls, ctx) -> TrainState | None:
        """The run's last checkpoint (``ctx.load_checkpoint``), or None when it starts fresh."""
        state = ctx.load_checkpoint()
        return None if state is None else cls.from_state_dict(state)
