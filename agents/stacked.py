"""Many seeds of one SAC or DQN arm in one process (``suite run --stack-seeds``): the suite's
own SAC and DQN over a seed dimension (batched matmuls; grouped convolutions for the CNNs),
written to follow stable-baselines3's algorithms and defaults. **This is not stable-baselines3**:
results record ``details.implementation``. Seed i of a stack trains as a stack of one seed i
(tests/test_rl_stacked.py).

What it shares with the lone trainers, its known differences from SB3, its CUDA graphs and its
checkpoints (``resume_method``, ``resumes_lone``): docs/design.md, "RL stacks (SAC, DQN)".
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from stable_baselines3.common.monitor import Monitor

from agents import dqn, sac, stacked_kfac
from agents.common import eval_seed, final_metrics, make_env
from agents.envs import describe
from agents.networks import CONV_NETS, ConvNet, Init, init_bounds
from agents.replay import Replay, sample_indices
from suite.errors import ConfigError
from suite.optimizers import OptimizerSpec, capture_blockers, role_details
from suite.result import Result
from suite.run.context import Diverged, RunContext
from suite.run.graphs import CapturedStep, refill, static_like
from suite.run.stacking import (
    LeadingSeedDimension,
    StackedOptimizer,
    continuing_stream,
    in_step_groups,
    joined_optimizer_state,
    lone_rng,
    seed_optimizer_state,
    stack_details,
    stacked_role_optimizers,
)
from suite.store import write_atomic

IMPLEMENTATION = (
    "suite stacked {algo} (agents/stacked.py): SB3's algorithm and defaults re-implemented over "
    "a seed dimension with batched matmuls; not stable-baselines3"
)
CHECKPOINT = "stack-checkpoint.pt"
# The lone trainers' checkpoint (agents/common.py save_sb3_checkpoint: RunContext's default).
LONE_CHECKPOINT = "checkpoint.pt"
ENVS = "stack-envs.pkl"
# SB3's Actor: LOG_STD_MIN, LOG_STD_MAX (sac/policies.py); SquashedDiagGaussian's epsilon.
LOG_STD_MIN, LOG_STD_MAX, SQUASH_EPS = -20.0, 2.0, 1e-6
# The Q-networks a DQN stack builds (the ``network`` setting): the MLP and agents/networks.py's
# CNNs, from the layer specs the lone extractors are built from.
DQN_NETWORKS = ("mlp", *CONV_NETS)
# Channels-last grouped convolutions: on the CPU (1 thread, batch 32) one update of 4 Nature-CNN
# seeds took 99 ms against 129 ms contiguous; no gain on MinAtar's 10x10.
CHANNELS_LAST = ("nature_cnn",)


# --- stacked networks -------------------------------------------------------------------------


class StackedMLP(LeadingSeedDimension):
    """``members`` MLPs per seed (SAC's twin critics: 2), ReLU between layers, as weight tensors
    of shape (S, members, fan_in, fan_out) and biases (S, members, 1, fan_out).

    Each seed's weights are drawn from its own generator by ``init``'s law (agents/networks.py
    ``init_bounds``; 'torch': PyTorch's default Linear initialization, the one SB3's networks
    use), seed by seed, so a seed's draws do not depend on the other seeds of the stack.
    """

    def __init__(
        self,
        sizes: list[int],
        members: int,
        generators: list[torch.Generator],
        device,
        init: Init = "torch",
    ):
        self.seeds, self.members, self.sizes = len(generators), members, sizes
        self.weights: list[torch.Tensor] = []
        self.biases: list[torch.Tensor] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            weight, bias = _draw_layer(
                (members, fan_in, fan_out), (members, 1, fan_out), init, (fan_in, fan_out),
                generators, device,
            )  # fmt: skip
            self.weights.append(weight)
            self.biases.append(bias)
        # K-FAC's statistics of the forwards that train this MLP (agents/stacked_kfac.py).
        self.capture = stacked_kfac.Capture(len(self.weights))

    def parameters(self) -> list[torch.Tensor]:
        return [t for pair in zip(self.weights, self.biases, strict=True) for t in pair]

    def forward(self, x: torch.Tensor, params: list[torch.Tensor] | None = None) -> torch.Tensor:
        """x (S, members, B, fan_in) -> (S, members, B, fan_out); ``params``: other weights of
        the same layout (a target network)."""
        params = self.parameters() if params is None else params
        seeds, members, batch = x.shape[:3]
        h = x.reshape(seeds * members, batch, -1)
        layers = len(params) // 2
        for index in range(layers):
            w, b = params[2 * index], params[2 * index + 1]
            inputs = h
            h = torch.baddbmm(
                b.reshape(seeds * members, 1, -1), h, w.reshape(seeds * members, *w.shape[2:])
            )
            self.capture.record(index, inputs, h)
            if index < layers - 1:
                h = torch.relu(h)
        return h.reshape(seeds, members, batch, -1)


class StackedConv(LeadingSeedDimension):
    """S stacks of an agents/networks.py ``ConvNet``'s convolutions (each followed by ReLU),
    every layer one grouped convolution over seed-major channels (the seeds folded into the
    channels, ``groups=S``), so one conv call per layer serves all seeds; each seed's weights
    drawn from its own generator by the spec's ``init`` law.

    :param shape: one observation's shape: (H, W, C) with ``spec.channels_last`` (MinAtar's
        frames), else (C, H, W) (the suite's Atari frames, agents/envs.py).
    :param memory_format: the layout the convolutions run in (a speed setting only; None:
        contiguous).
    """

    def __init__(
        self,
        shape,
        spec: ConvNet,
        generators,
        device,
        memory_format: torch.memory_format | None = None,
    ):
        self.seeds, self.spec = len(generators), spec
        self.memory_format = memory_format or torch.contiguous_format
        channels = shape[2] if spec.channels_last else shape[0]
        self.weights: list[torch.Tensor] = []
        self.biases: list[torch.Tensor] = []
        for filters, kernel, _ in spec.layers:
            fans = (channels * kernel * kernel, filters * kernel * kernel)
            weight, bias = _draw_layer(
                (filters, channels, kernel, kernel), (filters,), spec.init, fans, generators, device
            )
            self.weights.append(weight)
            self.biases.append(bias)
            channels = filters
        self.features = math.prod(spec.output_shape(tuple(shape)))

    def parameters(self) -> list[torch.Tensor]:
        return [t for pair in zip(self.weights, self.biases, strict=True) for t in pair]

    def forward(self, frames: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        """frames (S, B, *shape) -> flattened features (S, B, features), in the order of
        nn.Flatten on one seed's (filters, H', W') output."""
        spec, x = self.spec, frames.float()
        if spec.divisor != 1.0:
            x = x / spec.divisor  # SB3 preprocess_obs: obs.float() / 255.0
        if spec.channels_last:
            x = x.permute(0, 1, 4, 2, 3)
        seeds, batch = x.shape[:2]
        h = x.transpose(0, 1).reshape(batch, seeds * x.shape[2], *x.shape[3:])
        h = h.contiguous(memory_format=self.memory_format)
        for index, (_, kernel, stride) in enumerate(spec.layers):
            weight, bias = params[2 * index], params[2 * index + 1]
            w = weight.reshape(-1, weight.shape[2], kernel, kernel)
            h = F.conv2d(h, w, bias.reshape(-1), stride, spec.pad(kernel), groups=seeds)
            h = torch.relu(h)
        return h.reshape(batch, seeds, -1).transpose(0, 1)


def _draw_layer(weight_shape, bias_shape, init: Init, fans, generators, device):
    """One layer's stacked (weight, bias), leaf tensors, each seed's drawn from its generator by
    ``init``'s law (agents/networks.py ``init_bounds``): weight then bias, seed by seed; a zero
    bias bound draws nothing."""
    weight_bound, bias_bound = init_bounds(init, *fans)
    weights, biases = [], []
    for g in generators:
        weights.append(_uniform(weight_shape, weight_bound, g, device))
        if bias_bound == 0.0:
            biases.append(torch.zeros(bias_shape, device=device))
        else:
            biases.append(_uniform(bias_shape, bias_bound, g, device))
    return torch.stack(weights).requires_grad_(), torch.stack(biases).requires_grad_()


def _uniform(shape, bound: float, generator: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(shape, generator=generator, device=device) * 2 - 1) * bound


# --- CUDA graphs ------------------------------------------------------------------------------


class CapturedCalls:
    """A stack's update and acting as CUDA graphs (suite/run/graphs.py, ``task.cuda_graphs``).

    Each is split in two: a host part that draws from the seeds' generators, in the order the
    eager code always drew, and a capture-safe part that reads those draws from static buffers
    (and the weights, optimizer states and replay storage, which stay where they are) and reads
    nothing back to the host. The capture-safe part runs through a ``CapturedStep``: a graph
    replayed on CUDA when ``graphs`` is 'on', the same function on the same buffers eagerly
    otherwise, so the CPU runs (and tests) what a graph replays.
    """

    graphs = "off: no optimizers built"
    """'on', or 'off: <why>' (``graph_setting``): set by ``build_optimizers``."""

    def run_captured(self, name: str, key: tuple, inputs: dict[str, torch.Tensor], build) -> Any:
        """Call ``name``'s CapturedStep with ``inputs`` copied into its static buffers.

        :param key: what the step reads besides its inputs (replay, optimizers, and the
            replay's ``storage_version``: its tensors replaced, agents/replay.py): another
            object or number builds (and on CUDA captures) the step anew.
        :param build: ``build(static) -> (step, host_effects)`` over the static buffers.
        """
        steps = self.__dict__.setdefault("_captured_steps", {})
        entry = steps.get(name)
        if entry is None or not all(map(_same_key, entry[0], key)):
            static = {k: static_like(v) for k, v in inputs.items()}
            step, host_effects = build(static)
            captured = CapturedStep(
                step, self.device, enabled=self.graphs == "on", host_effects=host_effects
            )
            steps[name] = entry = (key, static, captured)
        else:
            for k, value in inputs.items():
                refill(entry[1][k], value)
        return entry[2]()

    def run_update(self, replay: Replay, optimizers: dict[str, StackedOptimizer], draws) -> None:
        """One update of every seed and role on the host-drawn ``draws`` (batch indices, noise):
        ``self._update(replay, optimizers, static)`` through ``run_captured``, every role's
        optimizer stepping once per replay; the losses per seed go to ``last_losses``."""
        losses = self.run_captured(
            "update",
            (replay, optimizers, getattr(replay, "storage_version", 0)),
            draws,
            lambda static: (
                partial(self._update, replay, optimizers, static),
                replayed_steps(optimizers),
            ),
        )
        self.last_losses.update(losses)


def _same_key(a, b) -> bool:
    return a is b or (isinstance(a, int) and a == b)


def graph_setting(config, specs: dict[str, OptimizerSpec], device) -> str:
    """Whether a stack's update is captured as a CUDA graph: 'on', or 'off: <why>' (each seed's
    ``details.cuda_graphs``). A role whose spec cannot be stepped inside a graph (K-FAC, a
    schedule, Lookahead: ``capture_blockers``) turns it off for the stack."""
    if not config.cuda_graphs:
        return "off: task.cuda_graphs false"
    for role, spec in specs.items():
        blocker = capture_blockers(spec)
        if blocker is not None:
            return f"off: {role}: {blocker}"
    if torch.device(device).type != "cuda":
        return "off: not CUDA"
    return "on"


def replayed_steps(optimizers: dict[str, StackedOptimizer]):
    """The host side of one replayed update: every role's optimizer steps once per update."""

    def host_effects() -> None:
        for optimizer in optimizers.values():
            optimizer.replayed_step()

    return host_effects


# --- SAC --------------------------------------------------------------------------------------


class SacStack(CapturedCalls, LeadingSeedDimension):
    """S SACs: actor, twin critics, their targets, the entropy coefficient (SB3 ``SAC``)."""

    algo = "SAC"

    def __init__(self, config: sac.Config, obs_space, action_space, generators, device):
        if not isinstance(action_space, gym.spaces.Box):
            raise ConfigError("SAC needs a continuous (Box) action space", key="task.env_id")
        self.config, self.generators, self.device = config, generators, device
        self.seeds = len(generators)
        obs_dim, self.act_dim = int(np.prod(obs_space.shape)), int(np.prod(action_space.shape))
        hidden = list(config.net_arch)
        # The actor's mean and log-std heads as one layer of 2*dim(A) outputs: the same
        # initialization distribution as SB3's two Linear heads (same fan-in).
        self.actor = StackedMLP([obs_dim, *hidden, 2 * self.act_dim], 1, generators, device)
        self.critic = StackedMLP([obs_dim + self.act_dim, *hidden, 1], 2, generators, device)
        self.critic_target = [p.detach().clone() for p in self.critic.parameters()]
        self.log_ent_coef = None
        if config.ent_coef == "auto":
            init = math.log(config.ent_coef_init)
            self.log_ent_coef = torch.full((self.seeds,), init, device=device).requires_grad_()
        self.target_entropy = -float(self.act_dim)
        self.low_np = action_space.low.astype(np.float32)
        self.high_np = action_space.high.astype(np.float32)
        self.low = torch.as_tensor(self.low_np, device=device)
        self.high = torch.as_tensor(self.high_np, device=device)
        self.last_losses: dict[str, torch.Tensor] = {}

    def role_parameters(self) -> dict[str, list[torch.Tensor]]:
        roles = {"actor": self.actor.parameters(), "critic": self.critic.parameters()}
        if self.log_ent_coef is not None:
            roles["entropy"] = [self.log_ent_coef]
        return roles

    def role_mlps(self) -> dict[str, list[StackedMLP]]:
        """The layers K-FAC may precondition, per role."""
        return {"actor": [self.actor], "critic": [self.critic]}

    def weights(self) -> dict[str, list[torch.Tensor]]:
        """Everything a checkpoint holds besides the optimizers (stacked tensors)."""
        return {**self.role_parameters(), "critic_target": self.critic_target}

    def ent_coef(self) -> torch.Tensor:
        if self.log_ent_coef is None:
            return torch.full((self.seeds,), float(self.config.ent_coef), device=self.device)
        return self.log_ent_coef.detach().exp()

    def action_log_prob(self, obs: torch.Tensor, noise: torch.Tensor):
        """Squashed Gaussian actions in [-1, 1] (S, B, A) and their log-probabilities (S, B)."""
        out = self.actor.forward(obs[:, None])[:, 0]
        mean, log_std = out.split(self.act_dim, dim=-1)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        gaussian = mean + log_std.exp() * noise
        action = torch.tanh(gaussian)
        # Normal log-density at mean + std * noise, then the tanh change of variables
        # (Haarnoja et al. 2018a, Appendix C; SB3 SquashedDiagGaussianDistribution.log_prob).
        log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - torch.log(1 - action.pow(2) + SQUASH_EPS).sum(-1)
        return action, log_prob

    def q_values(self, obs, actions, params=None) -> torch.Tensor:
        """Both critics' values (S, 2, B)."""
        x = torch.cat([obs, actions], dim=-1)[:, None].expand(-1, 2, -1, -1)
        return self.critic.forward(x, params)[..., 0]

    def act(self, obs: torch.Tensor, step: int, spaces) -> tuple[np.ndarray, np.ndarray]:
        """(actions for the envs, actions for the buffer: scaled to [-1, 1])."""
        if step < self.config.learning_starts:
            env_actions = np.stack([space.sample() for space in spaces]).astype(np.float32)
            scaled = 2.0 * (env_actions - self.low_np) / (self.high_np - self.low_np) - 1.0
            return env_actions, scaled
        noise = torch.stack(
            [
                torch.randn((1, self.act_dim), generator=g, device=self.device)
                for g in self.generators
            ]
        )
        action = self.run_captured(
            "act",
            (),
            {"obs": obs, "noise": noise},
            lambda static: (partial(self._act, static), None),
        )
        return self.unscale(action), action.cpu().numpy()

    def _act(self, static: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch of acting, capture-safe: (S, A) actions in [-1, 1]."""
        with torch.no_grad():
            action, _ = self.action_log_prob(static["obs"][:, None], static["noise"])
        return action[:, 0]

    def greedy(self, obs: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            mean = self.actor.forward(obs[:, None, None])[:, 0, 0, : self.act_dim]
        return self.unscale(torch.tanh(mean))

    def unscale(self, action: torch.Tensor) -> np.ndarray:
        return (self.low + 0.5 * (action + 1.0) * (self.high - self.low)).cpu().numpy()

    def after_step(self, step: int) -> None:
        pass

    def update(self, replay: Replay, optimizers: dict[str, StackedOptimizer]) -> None:
        """One gradient step of every seed (SB3 ``SAC.train``, one iteration); each seed's loss
        is a mean over its own batch, and the seeds' losses are summed: the gradient of the sum
        for seed i's parameters is seed i's own gradient. The draws are made here, the step in
        ``_update`` (a CUDA graph on CUDA: ``CapturedCalls``)."""
        config = self.config
        index = sample_indices(replay, config.batch_size, self.generators)
        noise = torch.stack(
            [
                torch.randn((2, config.batch_size, self.act_dim), generator=g, device=self.device)
                for g in self.generators
            ]
        )
        self.run_update(replay, optimizers, {"index": index, "noise": noise})

    def _update(self, replay: Replay, optimizers, static: dict) -> dict[str, torch.Tensor]:
        """The update on the drawn batch indices and noise, capture-safe: the losses per seed."""
        config, noise, losses = self.config, static["noise"], {}
        obs, actions, rewards, next_obs, dones = replay.sample(static["index"])
        with self.actor.capture.capturing():
            actions_pi, log_prob = self.action_log_prob(obs, noise[:, 0])
        ent_coef = self.ent_coef()  # before the entropy step, as SB3
        if self.log_ent_coef is not None:  # the config's, fixed: the same branch every replay
            target = (log_prob + self.target_entropy).detach()
            ent_loss = -(self.log_ent_coef[:, None] * target).mean(1)
            _step(optimizers["entropy"], ent_loss)
            losses["entropy"] = ent_loss.detach()
        with torch.no_grad():
            next_actions, next_log_prob = self.action_log_prob(next_obs, noise[:, 1])
            next_q = self.q_values(next_obs, next_actions, self.critic_target).min(1).values
            next_q = next_q - ent_coef[:, None] * next_log_prob
            target_q = rewards + (1 - dones) * config.gamma * next_q
        with self.critic.capture.capturing():
            current_q = self.q_values(obs, actions)
        critic_loss = 0.5 * (current_q - target_q[:, None]).pow(2).mean(2).sum(1)
        _step(optimizers["critic"], critic_loss)
        # Through frozen critic weights: the actor's loss needs dQ/da only. SB3 also fills the
        # critic's .grad here, which its next zero_grad discards; skipping it saves a third of
        # the critic's backward work.
        frozen = [p.detach() for p in self.critic.parameters()]
        min_q_pi = self.q_values(obs, actions_pi, frozen).min(1).values
        actor_loss = (ent_coef[:, None] * log_prob - min_q_pi).mean(1)
        _step(optimizers["actor"], actor_loss)
        with torch.no_grad():  # SB3 polyak_update: target = (1 - tau) target + tau online
            for t, p in zip(self.critic_target, self.critic.parameters(), strict=True):
                t.mul_(1 - config.tau).add_(p, alpha=config.tau)
        return {**losses, "critic": critic_loss.detach(), "actor": actor_loss.detach()}

    def seed_details(self, i: int) -> dict[str, Any]:
        details: dict[str, Any] = {"ent_coef": self.config.ent_coef}
        if self.log_ent_coef is not None:
            details["ent_coef_final"] = float(self.log_ent_coef[i].detach().exp())
        return details


# --- DQN --------------------------------------------------------------------------------------


class DqnStack(CapturedCalls, LeadingSeedDimension):
    """S DQNs: Q-network and target network (SB3 ``DQN``: MLP or agents/networks.py's CNNs)."""

    algo = "DQN"

    def __init__(self, config: dqn.Config, obs_space, action_space, generators, device):
        if config.network not in DQN_NETWORKS:
            raise ConfigError(
                f"--stack-seeds: no stacked DQN Q-network {config.network!r}",
                key="task.network",
                choices=list(DQN_NETWORKS),
            )
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ConfigError("DQN needs a Discrete action space", key="task.env_id")
        self.config, self.generators, self.device = config, generators, device
        self.seeds, self.n_actions = len(generators), int(action_space.n)
        self.conv, init = None, "torch"
        spec = CONV_NETS.get(config.network)
        if spec is None:
            sizes = [int(np.prod(obs_space.shape))]
        else:
            # The CNNs' fully connected layer of features (if any) and the head are the MLP
            # below. SB3's CnnPolicy takes agents/envs.py's Atari frames, (stack, 84, 84) uint8,
            # as they are (channels first: VecTransposeImage is for channels-last images).
            layout = torch.channels_last if config.network in CHANNELS_LAST else None
            self.conv = StackedConv(obs_space.shape, spec, generators, device, layout)
            sizes = [self.conv.features, *([spec.features] if spec.features else [])]
            init = spec.init
        sizes = [*sizes, *config.net_arch, self.n_actions]
        self.q = StackedMLP(sizes, 1, generators, device, init)
        self.q_target = [p.detach().clone() for p in self.parameters()]
        self.last_losses: dict[str, torch.Tensor] = {}

    def parameters(self) -> list[torch.Tensor]:
        conv = [] if self.conv is None else self.conv.parameters()
        return [*conv, *self.q.parameters()]

    def role_parameters(self) -> dict[str, list[torch.Tensor]]:
        return {"q": self.parameters()}

    def role_mlps(self) -> dict[str, list[StackedMLP]]:
        # K-FAC on the CNNs would need the convolutions' factors too: not stacked.
        return {"q": [self.q]} if self.conv is None else {}

    def weights(self) -> dict[str, list[torch.Tensor]]:
        return {"q": self.parameters(), "q_target": self.q_target}

    def q_values(self, obs: torch.Tensor, params=None) -> torch.Tensor:
        """(S, B, actions) for observations (S, B, *obs_shape)."""
        params = self.parameters() if params is None else params
        if self.conv is not None:
            split = len(self.conv.parameters())
            features = self.conv.forward(obs, params[:split])
            return self.q.forward(features[:, None], params[split:])[:, 0]
        return self.q.forward(obs.flatten(2)[:, None], params)[:, 0]

    def exploration_rate(self, step: int) -> float:
        """SB3's linear schedule from 1 to ``exploration_final_eps`` over the first
        ``exploration_fraction`` of ``total_timesteps`` (``get_linear_fn``)."""
        config = self.config
        progress = step / config.total_timesteps
        if progress > config.exploration_fraction:
            return config.exploration_final_eps
        return 1.0 + progress * (config.exploration_final_eps - 1.0) / config.exploration_fraction

    def act(self, obs: torch.Tensor, step: int, spaces) -> tuple[np.ndarray, np.ndarray]:
        if step < self.config.learning_starts:
            actions = np.array([space.sample() for space in spaces])
            return actions, actions
        epsilon = self.exploration_rate(step)
        draws = torch.stack(
            [torch.rand((), generator=g, device=self.device) for g in self.generators]
        )
        greedy = self.run_captured(
            "act", (), {"obs": obs}, lambda static: (partial(self._greedy, static), None)
        )
        greedy, draws = greedy.cpu().numpy(), draws.cpu().numpy()
        actions = np.array(
            [
                space.sample() if u < epsilon else a
                for u, a, space in zip(draws, greedy, spaces, strict=True)
            ]
        )
        return actions, actions

    def _greedy(self, static: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch of acting's greedy actions (S,), capture-safe."""
        with torch.no_grad():
            return self.q_values(static["obs"][:, None])[:, 0].argmax(-1)

    def greedy(self, obs: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.q_values(obs[:, None])[:, 0].argmax(-1).cpu().numpy()

    def after_step(self, step: int) -> None:
        # SB3 DQN._on_step (dqn/dqn.py): ``_n_calls`` counts env.step calls (one env: the
        # environment steps) and the target is copied when ``_n_calls % target_update_interval
        # == 0`` (polyak_update with tau 1), before this rollout's gradient steps.
        if step % self.config.target_update_interval == 0:
            self.copy_target()

    def copy_target(self) -> None:
        """The hard target update: target weights := online weights, every seed."""
        with torch.no_grad():
            for t, p in zip(self.q_target, self.parameters(), strict=True):
                t.copy_(p)

    def update(self, replay: Replay, optimizers: dict[str, StackedOptimizer]) -> None:
        """One gradient step of every seed (agents/dqn.py ``SuiteDQN.train``, one iteration): the
        batch indices drawn here, the step in ``_update`` (a CUDA graph on CUDA)."""
        index = sample_indices(replay, self.config.batch_size, self.generators)
        self.run_update(replay, optimizers, {"index": index})

    def _update(self, replay: Replay, optimizers, static: dict) -> dict[str, torch.Tensor]:
        """The TD step on the drawn batch indices, capture-safe: the losses per seed. The target
        network is read here and copied into in place (``after_step``), outside the graph."""
        config = self.config
        obs, actions, rewards, next_obs, dones = replay.sample(static["index"])
        with torch.no_grad():
            next_q = self.q_values(next_obs, self.q_target).max(-1).values
            target_q = dqn.td_target(rewards, dones, config.gamma, next_q)
        with self.q.capture.capturing():
            current_q = self.q_values(obs).gather(-1, actions.long()[..., None])[..., 0]
        losses = dqn.td_loss(current_q, target_q, config.loss, dim=1)  # (S,): one per seed
        _step(optimizers["q"], losses)
        return {"q": losses.detach()}

    def seed_details(self, i: int) -> dict[str, Any]:
        return {"loss": self.config.loss, "network": self.config.network,
                "env_kwargs": self.config.env_kwargs}  # fmt: skip


def build_optimizers(algo, specs: dict[str, OptimizerSpec]) -> dict[str, StackedOptimizer]:
    """Each role's optimizer over its stacked parameters: elementwise ones as the other stacks
    build them (suite/run/stacking.py), K-FAC batched over the seeds (agents/stacked_kfac.py);
    gradient-norm clipping per seed either way. Decides whether the update is a CUDA graph
    (``algo.graphs``: ``graph_setting``); the optimizers are then built capturable (their step
    counts on the device), and only then: torch's capturable steps run on CUDA alone."""
    roles = algo.role_parameters()
    algo.graphs = graph_setting(algo.config, {role: specs[role] for role in roles}, algo.device)
    capturable = algo.graphs == "on"
    optimizers = {}
    for role, params in roles.items():
        spec = specs[role]
        if not stacked_kfac.is_kfac(spec):
            optimizers.update(
                stacked_role_optimizers(
                    {role: params}, algo.seeds, {role: spec}, capturable=capturable
                )
            )
            continue
        mlps = algo.role_mlps().get(role)
        if not mlps:
            raise ValueError(f"{role}: K-FAC has no stacked layers to precondition here")
        for mlp in mlps:
            mlp.capture.enabled = True
        unclipped = replace(spec, clip_grad_norm=None)
        inner = stacked_kfac.build_kfac_role(role, unclipped, mlps, algo.seeds)
        optimizers[role] = StackedOptimizer(inner, algo.seeds, spec.clip_grad_norm)
    return optimizers


def _seed_optimizer_states(optimizers, algo, i: int) -> dict[str, dict]:
    """Seed i's optimizer state per role (the elementwise ones in their lone format)."""
    states, role_params = {}, algo.role_parameters()
    for role, optimizer in optimizers.items():
        state = optimizer.inner.state_dict()
        if isinstance(optimizer.inner.optimizer, stacked_kfac.StackedKFAC):
            states[role] = stacked_kfac.seed_state(state, i)
        else:
            states[role] = seed_optimizer_state(state, role_params[role], i, algo.split)
    return states


def _load_optimizer_states(optimizers, algo, seed_states: list[dict]) -> None:
    for role, optimizer in optimizers.items():
        lone = [states[role] for states in seed_states]
        if isinstance(optimizer.inner.optimizer, stacked_kfac.StackedKFAC):
            joined = stacked_kfac.joined_state(lone)
        else:
            joined = joined_optimizer_state(lone, optimizer.inner.params, algo.split, algo.join)
        built = [group.get("capturable") for group in optimizer.inner.inner.param_groups]
        optimizer.inner.load_state_dict(joined)
        _restore_capturable(optimizer.inner.inner, built)


def _restore_capturable(optimizer: torch.optim.Optimizer, built: list) -> None:
    """Give the param groups back the ``capturable`` flag this run built them with.

    torch's ``load_state_dict`` takes the flag of the run that saved the state (and places the
    ``step`` counts by it), but this run's graphs decide it (``build_optimizers``): a graph
    run's checkpoint resumed on the CPU must not step capturably (torch refuses on the CPU), and
    an eager run's checkpoint resumed with graphs must count on the device.
    """
    for group, flag in zip(optimizer.param_groups, built, strict=True):
        if flag is None or group.get("capturable") == flag:
            continue
        group["capturable"] = flag
        for param in group["params"]:
            step = optimizer.state.get(param, {}).get("step")
            if torch.is_tensor(step):  # where torch keeps it: the device if capturable, else CPU
                where = param.device if flag else torch.device("cpu")
                optimizer.state[param]["step"] = step.to(where, torch.float32)


def _step(optimizer: StackedOptimizer, losses: torch.Tensor) -> None:
    optimizer.zero_grad()
    losses.sum().backward()
    optimizer.step()


ALGORITHMS = {"sac": (sac, SacStack), "dqn": (dqn, DqnStack)}

# What `suite run --stack-seeds` checks before anything runs (suite/cli.py): the elementwise
# optimizers, and K-FAC, batched here.
check_stackable = stacked_kfac.check_stackable_rl


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Envs:
    """The seeds' training envs (one vector env), their evaluation envs, the current obs."""

    train: SyncVectorEnv
    evaluation: list[gym.Env]
    obs: np.ndarray


def settings_of(config) -> tuple:
    if isinstance(config, dqn.Config):
        return (config.env_kwargs, config.max_episode_steps, config.atari)
    return (config.env_kwargs, config.max_episode_steps)


def build_envs(config, seeds: list[int], saved: list[dict | None] | None = None) -> Envs:
    """Each seed's training env made as its lone run's (agents/common.py ``make_env``: reset
    with its seed, action space seeded), in one vector env that resets an ended episode in the
    same step; with ``saved`` (checkpoints), the envs as they were pickled (a seed whose envs
    could not be pickled gets fresh ones, reset)."""
    settings = settings_of(config)
    saved = saved or [None] * len(seeds)
    factories = [
        partial(make_env, config.env_id, seed, *settings)
        if s is None
        else partial(_same, s["train"])
        for seed, s in zip(seeds, saved, strict=True)
    ]
    evaluation = [
        make_env(config.env_id, eval_seed(seed), *settings) if s is None else s["eval"]
        for seed, s in zip(seeds, saved, strict=True)
    ]
    train = SyncVectorEnv(factories, autoreset_mode=AutoresetMode.SAME_STEP)
    # SB3 seeds its VecEnv with the run's seed (BaseAlgorithm.set_random_seed: env.seed(seed))
    # and resets it once in _setup_learn, so the first episode starts from reset(seed=seed), the
    # state make_env's reset drew; the pickled envs go on mid-episode.
    if all(s is None for s in saved):
        obs, _ = train.reset(seed=list(seeds))
    else:
        obs = np.stack(
            [
                train.envs[i].reset(seed=seed)[0] if s is None else s["obs"]
                for i, (seed, s) in enumerate(zip(seeds, saved, strict=True))
            ]
        )
    return Envs(train, evaluation, obs)


def _same(env):
    return env


def monitor(env: gym.Env) -> Monitor:
    node = env
    while not isinstance(node, Monitor):
        node = node.env
    return node


def evaluate(
    algo, envs: list[gym.Env], episodes: int, device, seeds: list[int] | None = None
) -> list[dict[str, float] | None]:
    """Greedy evaluation of every seed on its own env (agents/common.py: SB3's
    ``evaluate_policy``, reset at the start, ``episodes`` whole episodes, Monitor's raw
    returns): one forward for all seeds per step; a seed whose episodes are done stops
    stepping. Every ended episode is followed by a reset, the last one too, as SB3's
    DummyVecEnv resets on ``done`` (``step_wait``), so the env stands where its lone run's does
    and the next evaluation's episodes are the lone run's. Only ``seeds`` (indices; default
    all) are evaluated, the others get None."""
    chosen = set(range(len(envs)) if seeds is None else seeds)
    obs = [env.reset()[0] if i in chosen else np.zeros(env.observation_space.shape, np.float32)
           for i, env in enumerate(envs)]  # fmt: skip
    returns: list[list[float]] = [[] for _ in envs]
    lengths: list[list[int]] = [[] for _ in envs]
    counted = [len(monitor(env).get_episode_rewards()) for env in envs]
    active = [episodes > 0 and i in chosen for i in range(len(envs))]
    while any(active):
        actions = algo.greedy(torch.as_tensor(np.stack(obs), dtype=torch.float32, device=device))
        for i, env in enumerate(envs):
            if not active[i]:
                continue
            obs[i], _, terminated, truncated, _ = env.step(actions[i])
            if not (terminated or truncated):
                continue
            # An episode counts when the Monitor saw it end: on Atari the Monitor sits inside
            # the life-loss wrapper (agents/envs.py), so a lost life ends the learner's episode
            # but not the game, and reset continues the game (SB3 evaluate_policy likewise).
            rewards = monitor(env).get_episode_rewards()
            if len(rewards) > counted[i]:
                counted[i] = len(rewards)
                returns[i].append(rewards[-1])
                lengths[i].append(monitor(env).get_episode_lengths()[-1])
                active[i] = len(returns[i]) < episodes
            obs[i] = env.reset()[0]  # DummyVecEnv.step_wait: reset on done, after the last too
    return [
        {
            "eval/return": float(np.mean(r)),
            "eval/return_std": float(np.std(r)),
            "eval/episode_length": float(np.mean(n)),
        }
        if i in chosen
        else None
        for i, (r, n) in enumerate(zip(returns, lengths, strict=True))
    ]


def training_episodes(env: gym.Env) -> dict[str, float]:
    """The last (up to 100) training episodes, as SB3's ``ep_info_buffer`` holds them."""
    rewards, lengths = (
        monitor(env).get_episode_rewards()[-100:],
        monitor(env).get_episode_lengths()[-100:],
    )
    if not rewards:
        return {}
    return {
        "train/episode_return": float(np.mean(rewards)),
        "train/episode_length": float(np.mean(lengths)),
    }


def train_stack(
    config, specs: dict[str, OptimizerSpec], contexts: list[RunContext], method: str = "bmm"
) -> list[Result]:
    """The lone trainer's ``train`` for the seeds of one arm at once (``contexts``): one result
    per seed, with the lone trainer's metric names. Seeds whose checkpoints stand at different
    steps train as separate stacks; a seed that diverges is recorded and the others go on."""
    if method != "bmm":
        raise ValueError(f"RL stacks use batched matmuls ('bmm'), not {method!r}")
    kind = "sac" if isinstance(config, sac.Config) else "dqn"
    check_same_settings(contexts)
    return in_step_groups(
        contexts,
        partial(train_group, kind, config, specs),
        lambda ctx: ctx.load_checkpoint(CHECKPOINT),
        step=lambda state: state["step"],
    )


def check_same_settings(contexts: list[RunContext]) -> None:
    """The seeds of a stack must differ by their seed alone (one config, one set of specs)."""
    first = contexts[0].run
    for ctx in contexts[1:]:
        for name in ("trainer", "arm", "task", "optimizers"):
            if getattr(ctx.run, name) != getattr(first, name):
                raise ValueError(
                    f"--stack-seeds: seeds {first.seed} and {ctx.run.seed} differ in {name}; "
                    "a stack trains seeds of one setting"
                )


def train_group(kind, config, specs, contexts, states) -> list[Result]:
    """One stack from fresh or from checkpoints at one step: the loop of SB3's ``learn``."""
    device, seeds = contexts[0].device, [ctx.seed for ctx in contexts]
    resumed = states[0] is not None
    saved_envs = [_load_envs(ctx) for ctx in contexts] if resumed else None
    if resumed and any(s is None for s in saved_envs):
        for ctx, s in zip(contexts, saved_envs, strict=True):
            if s is None:
                ctx.log("environments were not saved: they restart from a reset")
    envs = build_envs(config, seeds, saved_envs)
    generators = [torch.Generator(device).manual_seed(seed) for seed in seeds]
    algo = ALGORITHMS[kind][1](
        config, envs.train.single_observation_space, envs.train.single_action_space,
        generators, device,
    )  # fmt: skip
    optimizers = build_optimizers(algo, specs)
    replay = Replay(
        len(seeds),
        min(config.buffer_size, config.total_timesteps),
        envs.train.single_observation_space,
        envs.train.single_action_space.shape,
        torch.float32 if kind == "sac" else torch.long,
        device,
        frame_stacked=kind == "dqn" and config.network == "nature_cnn",
    )
    step = 0
    if resumed:
        step = states[0]["step"]
        _load_state(algo, optimizers, replay, states)
        algo.generators[:] = [
            continuing_stream(s, device, ctx.saved_rng)
            for s, ctx in zip(seeds, contexts, strict=True)
        ]
    spaces = [env.action_space for env in envs.train.envs]
    live, outcomes = list(range(len(seeds))), {}
    next_eval = (step // config.eval_every + 1) * config.eval_every
    while step < config.total_timesteps and live:
        obs_t = torch.as_tensor(envs.obs, dtype=torch.float32, device=device)
        env_actions, stored = algo.act(obs_t, step, spaces)
        for i in set(range(len(seeds))) - set(live):  # a diverged seed's env gets valid actions
            env_actions[i] = spaces[i].sample()
        next_obs, rewards, terminated, truncated, infos = envs.train.step(env_actions)
        step += 1
        for ctx in contexts:
            ctx.progress(step, config.total_timesteps)
        save_due = False
        if step >= next_eval or step >= config.total_timesteps:
            # Before this step's update, as SB3's callback (it runs inside collect_rollouts).
            next_eval = (step // config.eval_every + 1) * config.eval_every
            _evaluate(algo, envs, config, contexts, step, live, outcomes)
            save_due = step < config.total_timesteps
        real_next = next_obs.copy()
        for i in np.nonzero(infos.get("_final_obs", np.zeros(len(seeds), bool)))[0]:
            real_next[i] = infos["final_obs"][i]
        replay.add(envs.obs, stored, rewards, real_next, terminated)
        envs.obs = next_obs
        algo.after_step(step)
        if step > config.learning_starts and step % config.train_freq == 0:
            for _ in range(config.gradient_steps):
                algo.update(replay, optimizers)
        if save_due and live:
            for i in live:
                _save_seed(contexts[i], algo, optimizers, replay, envs, i, step)
    for i in live:
        outcomes[i] = _result(contexts[i], algo, optimizers, envs, config, i)
    return [outcomes[i] for i in range(len(seeds))]


def _evaluate(algo, envs: Envs, config, contexts, step: int, live: list, outcomes: dict) -> None:
    """Evaluate every live seed, recording it, or recording it as diverged."""
    finite = _finite_per_seed(algo)
    good = [i for i in live if finite[i]]
    evals = evaluate(algo, envs.evaluation, config.eval_episodes, algo.device, good)
    for i in list(live):
        if not finite[i]:
            outcomes[i] = contexts[i].diverged_result(Diverged(step, "parameters or losses"))
            live.remove(i)
            continue
        contexts[i].record(step, {**evals[i], **training_episodes(envs.train.envs[i])})


def _finite_per_seed(algo) -> list[bool]:
    """Each seed's parameters and last losses all finite (SB3 checks the policy's parameters
    at each evaluation; the suite's DQN also its TD loss)."""
    ok = torch.ones(algo.seeds, dtype=torch.bool, device=algo.device)
    for params in algo.weights().values():
        for p in params:
            ok &= torch.isfinite(p.detach().reshape(algo.seeds, -1)).all(1)
    for losses in algo.last_losses.values():
        ok &= torch.isfinite(losses)
    return ok.tolist()


def resume_method(ctx: RunContext) -> str | None:
    """How a lone run (no ``--stack-seeds``) whose directory holds a stack's checkpoint must go
    on: 'bmm', as a stack of one; None where there is none, or where a lone (SB3) checkpoint
    was written after it.

    The lone trainer cannot load this module's checkpoint and would start afresh, and going on
    with SB3 from it would mix two implementations in one run. Seed i of a stack trains as a
    stack of one seed i (tests/test_rl_stacked.py), so the run finishes as the stack would
    have, and its result says so (``details.implementation``, ``details.stacked``).
    """
    stacked_path, lone_path = ctx.run_dir / CHECKPOINT, ctx.run_dir / LONE_CHECKPOINT
    if not stacked_path.exists():
        return None
    if lone_path.exists() and lone_path.stat().st_mtime > stacked_path.stat().st_mtime:
        return None
    ctx.log(
        f"resuming with the stacked implementation (agents/stacked.py) as a stack of one: this "
        f"run directory holds a --stack-seeds checkpoint ({CHECKPOINT}), which the lone SB3 "
        "trainer cannot load"
    )
    return "bmm"


def resumes_lone(ctx: RunContext) -> bool:
    """Whether a seed sent to a stack (``--stack-seeds``) must go on as its lone run instead:
    its directory holds a lone (SB3) checkpoint newer than any stack checkpoint, i.e. a lone run
    was interrupted and the grid is now run stacked. A stack cannot load an SB3 model, and
    starting the seed afresh in the stack would throw the run's progress away
    (suite/run/worker.py runs such seeds lone, the rest as the stack)."""
    lone_path, stacked_path = ctx.run_dir / LONE_CHECKPOINT, ctx.run_dir / CHECKPOINT
    if not lone_path.exists():
        return False
    if stacked_path.exists() and stacked_path.stat().st_mtime >= lone_path.stat().st_mtime:
        return False
    ctx.log(
        f"resuming as a lone stable-baselines3 run, outside the stack: this run directory "
        f"holds a lone run's checkpoint ({LONE_CHECKPOINT}), which a stack cannot load"
    )
    return True


def _result(ctx: RunContext, algo, optimizers, envs: Envs, config, i: int) -> Result:
    details: dict[str, Any] = {"env": describe(envs.train.envs[i]), **algo.seed_details(i)}
    details.update(role_details({role: o.inner for role, o in optimizers.items()}))
    details["stacked"] = stack_details(algo.seeds, "bmm")
    details["cuda_graphs"] = algo.graphs
    details["implementation"] = IMPLEMENTATION.format(algo=algo.algo)
    metrics = final_metrics(
        ctx.curves, config.total_timesteps, config.final_evals, config.return_threshold
    )
    return ctx.result(metrics, details=details)


# --- checkpoints ------------------------------------------------------------------------------


def _save_seed(ctx: RunContext, algo, optimizers, replay: Replay, envs: Envs, i: int, step: int):
    """Seed i's checkpoint: weights, optimizer states (its lone RoleOptimizers'), its replay
    buffer, its random stream; its environments (mid-episode) in a pickle beside it."""
    snapshot = {"train": envs.train.envs[i], "eval": envs.evaluation[i], "obs": envs.obs[i]}
    files: tuple[str, ...] = (ENVS,)
    try:
        write_atomic(ctx.run_dir / ENVS, pickle.dumps(snapshot))
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        # The suite's Atari envs cannot be pickled (a lambda in gymnasium's ReshapeObservation):
        # as the lone trainer (agents/common.py), resume then restarts the envs.
        (ctx.run_dir / ENVS).unlink(missing_ok=True)
        ctx.log(f"environments not saved ({type(error).__name__}: {error}); resume is not exact")
        files = ()
    weights = {
        name: [p.detach()[i].cpu().clone() for p in params]
        for name, params in algo.weights().items()
    }
    ctx.save_checkpoint(
        {
            "step": step,
            "weights": weights,
            "optimizers": _seed_optimizer_states(optimizers, algo, i),
            "replay": replay.seed_state(i),
        },
        name=CHECKPOINT,
        rng=lone_rng(algo.generators[i]),
        files=files,
    )


def _load_envs(ctx: RunContext) -> dict | None:
    """The seed's pickled envs, or None where they could not be saved."""
    path = ctx.run_dir / ENVS
    if not path.exists():
        return None
    # A pickle written by this run itself, trusted as SB3's replay-buffer pickle is.
    return pickle.loads(path.read_bytes())  # noqa: S301


def _load_state(algo, optimizers, replay: Replay, states: list[dict]) -> None:
    with torch.no_grad():
        for name, params in algo.weights().items():
            for index, p in enumerate(params):
                p.copy_(torch.stack([s["weights"][name][index] for s in states]).to(p.device))
    _load_optimizer_states(optimizers, algo, [s["optimizers"] for s in states])
    replay.load([s["replay"] for s in states])
