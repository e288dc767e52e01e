"""DQN (Mnih et al. 2015) with stable-baselines3, one optimizer role: ``q``.

The arm's spec for ``q`` (class, kwargs, schedule, clipping, Lookahead) is what trains the
Q-network, from the first step to the last and across save/load (see agents/sb3_roles.py).
The TD loss is a setting, because the optimizer effect depends on it (Obando-Ceron & Castro
2021, §5.4: with RMSprop Huber beats MSE, Adam+MSE beats both).

Networks: an MLP (classic control), the Nature CNN on preprocessed Atari frames (ALE ids get
the standard preprocessing of agents/envs.py), or on MinAtar's 10x10 frames the MinAtar CNN (conv
16x3x3 + FC 128, Young & Tian 2019) or Dopamine's (conv 16x3x3 SAME, Xavier init); ``network``
picks one (agents/networks.py) and ``net_arch`` is the head on top.

Run: ``python -m suite run quickstart`` (configs/quickstart.yaml) or
``python -m suite run dqn-breakout-adam-vs-rmsprop``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import DQN

from agents.common import (
    EvalSettings,
    StackSettings,
    eval_seed,
    final_metrics,
    learn_to_budget,
    make_env,
    resume_model,
    role_details,
)
from agents.envs import (
    AtariSettings,
    check_env_id,
    check_env_kwargs,
    check_network,
    check_trains,
    describe,
)
from agents.networks import CONV_NETS, FEATURE_EXTRACTORS, initialize
from agents.sb3_roles import SB3_LR_UNUSED, RoleOptimizers
from suite.optimizers import OptimizerSpec
from suite.result import Result
from suite.run.context import Diverged, RunContext


@dataclass
class Config(StackSettings, EvalSettings):
    """DQN task settings (the ``task`` and ``budgets`` keys of an experiment file)."""

    env_id: str = "CartPole-v1"
    """gymnasium id; MinAtar and ALE ids are registered on demand."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """passed to gymnasium.make (sticky actions, frame skip, ...), recorded with the run."""
    max_episode_steps: int | None = None
    """time limit in agent steps; None keeps the registered one (MinAtar: agents/envs.py)."""
    atari: AtariSettings = field(default_factory=AtariSettings)
    """the Atari preprocessing (ALE ids only)."""
    total_timesteps: int = 50_000
    """environment steps of training."""
    buffer_size: int = 100_000
    learning_starts: int = 1_000
    batch_size: int = 64
    gamma: float = 0.99
    train_freq: int = 4
    """environment steps between updates."""
    gradient_steps: int = 1
    """gradient steps per update."""
    target_update_interval: int = 1_000
    """environment steps between target-network copies."""
    exploration_fraction: float = 0.1
    exploration_final_eps: float = 0.05
    loss: Literal["huber", "mse"] = "huber"
    """TD loss: Huber (Nature DQN's clipped TD error) or squared error."""
    network: Literal["mlp", "nature_cnn", "minatar_cnn", "dopamine_minatar"] = "mlp"
    """features extractor: none (MLP), Nature CNN (Atari frames), MinAtar CNN or Dopamine's
    MinAtar network (agents/networks.py)."""
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    """hidden layer sizes of the Q-network's head (on the features; [] for the CNNs' papers)."""

    def validate(self) -> None:
        for name in (
            "total_timesteps",
            "buffer_size",
            "batch_size",
            "train_freq",
            "gradient_steps",
            "target_update_interval",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not 0 <= self.gamma <= 1:
            raise ValueError("gamma must be in [0, 1]")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError("max_episode_steps must be >= 1")
        check_env_id(self.env_id)
        check_env_kwargs(self.env_id, self.env_kwargs)
        check_network(self.env_id, self.network)
        check_trains(self.total_timesteps, self.learning_starts, self.train_freq)
        self.validate_evaluation()


def roles(config: Config) -> tuple[str, ...]:
    return ("q",)


def td_target(
    rewards: torch.Tensor, dones: torch.Tensor, discounts, next_q: torch.Tensor
) -> torch.Tensor:
    """The one-step TD target r + (1 - done) * gamma * max_a Q_target(s', a) (Mnih et al. 2015,
    Algorithm 1), ``next_q`` being that maximum."""
    return rewards + (1 - dones) * discounts * next_q


def td_loss(
    current_q: torch.Tensor, target_q: torch.Tensor, loss: str, dim: int | None = None
) -> torch.Tensor:
    """Huber (smooth L1, delta 1: the gradient of TD errors beyond +-1 is clipped, as in Nature
    DQN's "error clipping") or squared TD error, averaged over every element, or over ``dim``
    only (a seed stack's batch dimension, agents/stacked.py: one loss per seed)."""
    criterion = F.smooth_l1_loss if loss == "huber" else F.mse_loss
    if dim is None:
        return criterion(current_q, target_q)
    return criterion(current_q, target_q, reduction="none").mean(dim)


class SuiteDQN(RoleOptimizers, DQN):
    """SB3 DQN whose ``q`` optimizer comes from the arm's spec and whose TD loss is a setting."""

    def __init__(self, *args, role_specs: dict | None = None, loss: str = "huber", **kwargs):
        self.role_specs, self.loss = role_specs, loss
        super().__init__(*args, **kwargs)

    def role_parameters(self):
        return {"q": ("policy.optimizer", list(self.q_net.parameters()), [self.q_net])}

    def trainable_parameters(self):
        return list(self.q_net.parameters())

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """SB3's DQN update with the loss as a setting; clipping is the role's own (in step)."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        losses = []
        for _ in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            discounts = data.discounts if data.discounts is not None else self.gamma
            with torch.no_grad():
                next_q = self.q_net_target(data.next_observations).max(dim=1).values.reshape(-1, 1)
                target_q = td_target(data.rewards, data.dones, discounts, next_q)
            current_q = torch.gather(self.q_net(data.observations), 1, data.actions.long())
            loss = td_loss(current_q, target_q, self.loss)
            if not torch.isfinite(loss):
                raise Diverged(self.num_timesteps, "TD loss")
            losses.append(loss.item())
            self.policy.optimizer.zero_grad()
            loss.backward()
            self.policy.optimizer.step()
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", float(np.mean(losses)))


def policy_kwargs(config: Config) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"net_arch": list(config.net_arch)}
    extractor = FEATURE_EXTRACTORS[config.network]
    if extractor is not None:
        kwargs["features_extractor_class"] = extractor
    return kwargs


def build(config: Config, specs: dict[str, OptimizerSpec], env, seed: int, device: str) -> SuiteDQN:
    model = SuiteDQN(
        # CnnPolicy scales uint8 frames to [0, 1]; MinAtar's boolean frames are not images to SB3.
        "CnnPolicy" if config.network == "nature_cnn" else "MlpPolicy",
        env,
        role_specs=dict(specs),
        loss=config.loss,
        learning_rate=SB3_LR_UNUSED,
        buffer_size=config.buffer_size,
        learning_starts=config.learning_starts,
        batch_size=config.batch_size,
        gamma=config.gamma,
        train_freq=config.train_freq,
        gradient_steps=config.gradient_steps,
        target_update_interval=config.target_update_interval,
        exploration_fraction=config.exploration_fraction,
        exploration_final_eps=config.exploration_final_eps,
        policy_kwargs=policy_kwargs(config),
        seed=seed,
        device=device,
        verbose=0,
    )
    spec = CONV_NETS.get(config.network)
    if spec is not None and spec.init != "torch":
        # SB3 builds the head (QNetwork.q_net) outside the extractor, with torch's default
        # initialization: drawn anew by the network's law, and the target copied again.
        initialize(model.q_net.q_net, spec.init)
        model.q_net_target.load_state_dict(model.q_net.state_dict())
    return model


def train(config: Config, specs: dict[str, OptimizerSpec], ctx: RunContext) -> Result:
    settings = (config.env_kwargs, config.max_episode_steps, config.atari)
    env = make_env(config.env_id, ctx.seed, *settings)
    eval_env = make_env(config.env_id, eval_seed(ctx.seed), *settings)
    state = ctx.load_checkpoint()
    if state is None:
        model = build(config, specs, env, ctx.seed, ctx.device)
    else:
        model, env, eval_env = resume_model(ctx, state, SuiteDQN, env, eval_env, replay=True)
    learn_to_budget(ctx, model, eval_env, config, resumed=state is not None, replay=True)
    details = {
        "loss": config.loss,
        "network": config.network,
        "env_kwargs": config.env_kwargs,
        "env": describe(env, config.atari),
        **role_details(model),
    }
    metrics = final_metrics(
        ctx.curves, config.total_timesteps, config.final_evals, config.return_threshold
    )
    return ctx.result(metrics, details=details)
