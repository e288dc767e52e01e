"""PPO (Schulman et al. 2017) with stable-baselines3: one ``policy`` role, or ``actor`` + ``critic``.

``optimizer_roles: shared`` trains the whole actor-critic with one optimizer, as SB3, CleanRL and
the claim do (CLAIMS.md 4). ``optimizer_roles: split`` gives the actor (policy MLP, action head,
log-std) and the critic (value MLP, value head) an optimizer each, over disjoint parameters; a
features extractor shared by both (``share_features_extractor``, SB3's setting) belongs to the
role ``features_extractor_role`` names, and that role steps it with the gradient of the whole
loss. Adam works per parameter, so one Adam over both sets equals two Adams with the same
settings (tests/test_ppo.py checks this on CPU); what separates them is clipping, which is each
role's own ``clip_grad_norm`` here. SB3 clips the global norm of *all* parameters with
``max_grad_norm`` and steps one optimizer, so :meth:`SuitePPO.train` is SB3's loop with the
optimization step changed; SB3's global clipping stays available as the ``max_grad_norm``
setting (off by default), which with split roles reproduces one shared optimizer exactly.

Networks: separate MLPs (``mlp``; 64-64 tanh, Schulman et al. 2017 §6.1), a shared MLP trunk
with linear heads (``mlp_trunk``: the same layers, shared), the Nature CNN (Atari) or the MinAtar
CNN. Rollouts come from ``n_envs`` environments stepped together; ``normalize`` adds SB3's
VecNormalize (observations and rewards), as baselines' PPO did on MuJoCo.

Run: ``python -m suite run ppo-shared-vs-split-adam``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.utils import explained_variance
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from torch import nn

from agents.common import (
    EvalSettings,
    eval_seed,
    final_metrics,
    learn_to_budget,
    make_env,
    make_vec_env,
    resume_model,
    role_details,
)
from agents.envs import AtariSettings, check_env_id, check_network, describe
from agents.networks import FEATURE_EXTRACTORS
from agents.sb3_roles import SB3_LR_UNUSED, RoleOptimizers
from suite.optimizers import OptimizerSpec
from suite.result import Result
from suite.run.context import Diverged, RunContext

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


@dataclass
class Config(EvalSettings):
    """PPO task settings (the ``task`` and ``budgets`` keys of an experiment file).

    Defaults are PPO's MuJoCo settings (Schulman et al. 2017, Table 3: horizon 2048, 10 epochs,
    minibatch 64, gamma 0.99, GAE lambda 0.95; clip 0.2, §6.1), which are also SB3's.
    """

    env_id: str = "CartPole-v1"
    """gymnasium id; MinAtar and ALE ids are registered on demand."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """passed to gymnasium.make (sticky actions, frame skip, ...), recorded with the run."""
    max_episode_steps: int | None = None
    """time limit in agent steps; None keeps the registered one (MinAtar: agents/envs.py)."""
    atari: AtariSettings = field(default_factory=AtariSettings)
    """the Atari preprocessing (ALE ids only)."""
    n_envs: int = 1
    """environments stepped together; a rollout is n_steps x n_envs transitions."""
    normalize: bool = False
    """VecNormalize observations and rewards (baselines' PPO on MuJoCo; RL Zoo)."""
    total_timesteps: int = 100_000
    """environment steps of training (summed over the n_envs environments)."""
    n_steps: int = 2048
    """steps per environment per rollout ("horizon")."""
    batch_size: int = 64
    """minibatch size."""
    n_epochs: int = 10
    """passes over each rollout."""
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    """the surrogate's clipping epsilon."""
    normalize_advantage: bool = True
    ent_coef: float = 0.0
    """entropy bonus c2 (0 on MuJoCo, 0.01 on Atari)."""
    vf_coef: float = 0.5
    """value-loss weight c1 (irrelevant to separate networks with split roles and Adam)."""
    target_kl: float | None = None
    """stop an update's epochs early past 1.5 x this approximate KL (SB3), None: never."""
    max_grad_norm: float | None = None
    """SB3's clipping of the global norm over *all* policy parameters, before the roles step
    (None: off, each role clips with its own spec). With split roles and Adam this reproduces
    one shared Adam exactly (tests/test_ppo.py), so one experiment can hold both arms."""
    optimizer_roles: Literal["shared", "split"] = "shared"
    """one ``policy`` optimizer, or ``actor`` + ``critic``."""
    network: Literal["mlp", "mlp_trunk", "nature_cnn", "minatar_cnn"] = "mlp"
    """separate MLPs, a shared MLP trunk (net_arch, shared) with linear heads, or a CNN."""
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    """hidden sizes of each of the policy and value MLPs (of the trunk for mlp_trunk)."""
    activation: Literal["tanh", "relu"] = "tanh"
    share_features_extractor: bool = True
    """one features extractor for actor and critic (SB3's default); CNNs only matter here."""
    features_extractor_role: Literal["actor", "critic"] = "actor"
    """with split roles, the role that owns a shared features extractor."""
    ortho_init: bool = True
    """orthogonal initialization (SB3, baselines)."""
    log_std_init: float = 0.0
    """initial log standard deviation of Gaussian policies."""
    eval_every: int = 10_000
    """environment steps between greedy evaluations (and checkpoints)."""

    def validate(self) -> None:
        for name in ("n_envs", "total_timesteps", "n_steps", "n_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2 (advantages are normalized per batch)")
        if self.n_steps * self.n_envs < 2:
            raise ValueError("n_steps x n_envs must be >= 2")
        if not (0 <= self.gamma <= 1 and 0 <= self.gae_lambda <= 1):
            raise ValueError("gamma and gae_lambda must be in [0, 1]")
        if self.clip_range <= 0:
            raise ValueError("clip_range must be > 0")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ValueError("max_grad_norm must be > 0 or null")
        check_env_id(self.env_id)
        check_network(self.env_id, self.network)
        self.validate_evaluation()


def roles(config: Config) -> tuple[str, ...]:
    return ("policy",) if config.optimizer_roles == "shared" else ("actor", "critic")


def split_modules(policy, features_extractor_role: str) -> dict[str, list[nn.Module]]:
    """The actor's and the critic's modules of an SB3 ActorCriticPolicy (disjoint).

    A features extractor shared by both goes to ``features_extractor_role``; separate ones go to
    their own side. The Gaussian log-std is a bare Parameter of the policy (see
    :func:`role_parameters_of`).
    """
    actor = [policy.mlp_extractor.policy_net, policy.action_net]
    critic = [policy.mlp_extractor.value_net, policy.value_net]
    if policy.share_features_extractor:
        (actor if features_extractor_role == "actor" else critic).append(policy.features_extractor)
    else:
        actor.append(policy.pi_features_extractor)
        critic.append(policy.vf_features_extractor)
    return {"actor": actor, "critic": critic}


def role_parameters_of(modules: list[nn.Module], extra: list[nn.Parameter]) -> list[nn.Parameter]:
    """The modules' parameters, each once, plus ``extra`` ones."""
    seen, params = set(), []
    for p in [q for m in modules for q in m.parameters()] + extra:
        if id(p) not in seen:
            seen.add(id(p))
            params.append(p)
    return params


class SuitePPO(RoleOptimizers, PPO):
    """SB3 PPO whose optimizers come from the arm's role specs; shared or split roles."""

    def __init__(
        self,
        *args,
        role_specs: dict | None = None,
        optimizer_roles: str = "shared",
        features_extractor_role: str = "actor",
        **kwargs,
    ):
        self.role_specs = role_specs
        self.optimizer_roles, self.features_extractor_role = (
            optimizer_roles,
            features_extractor_role,
        )
        super().__init__(*args, **kwargs)

    def role_parameters(self):
        policy = self.policy
        if self.optimizer_roles == "shared":
            return {"policy": ("policy.optimizer", list(policy.parameters()), [policy])}
        modules = split_modules(policy, self.features_extractor_role)
        log_std = getattr(policy, "log_std", None)
        actor_extra = [log_std] if isinstance(log_std, nn.Parameter) else []
        return {
            "actor": (
                "policy.actor_optimizer",
                role_parameters_of(modules["actor"], actor_extra),
                modules["actor"],
            ),
            "critic": (
                "policy.critic_optimizer",
                role_parameters_of(modules["critic"], []),
                modules["critic"],
            ),
        }

    def trainable_parameters(self):
        return list(self.policy.parameters())

    def install_role_optimizers(self) -> None:
        super().install_role_optimizers()
        if self.optimizer_roles == "split":
            # SB3's own Adam over every parameter would otherwise sit unused at policy.optimizer;
            # removing it means nothing can step it by mistake.
            self.policy.optimizer = None

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        # The role optimizers' state (moments, schedule, step count) is saved and reloaded.
        return ["policy", *(attribute for attribute, _, _ in self.role_parameters().values())], []

    def train(self) -> None:
        """SB3's ``PPO.train`` (stable_baselines3/ppo/ppo.py, v2.9) with one change: instead of
        stepping ``policy.optimizer``, every role optimizer is zeroed, the loss backpropagated
        once, and each role clips its own parameters (its spec's ``clip_grad_norm``) and steps.
        SB3's global clipping (``max_grad_norm``) applies before that only when it is set."""
        self.policy.set_training_mode(True)
        optimizers = list(self.role_optimizers().values())
        self._update_learning_rate(optimizers)  # logs only: the roles own their schedules
        clip_range = self.clip_range(self._current_progress_remaining)

        entropy_losses, pg_losses, value_losses, clip_fractions = [], [], [], []
        continue_training = True
        for _ in range(self.n_epochs):
            approx_kl_divs = []
            for rollout_data in self.rollout_buffer.get(self.batch_size):
                actions = rollout_data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = rollout_data.actions.long().flatten()
                values, log_prob, entropy = self.policy.evaluate_actions(
                    rollout_data.observations, actions
                )
                values = values.flatten()
                advantages = rollout_data.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

                # Clipped surrogate objective (Schulman et al. 2017, eq. 7).
                ratio = torch.exp(log_prob - rollout_data.old_log_prob)
                policy_loss_1 = advantages * ratio
                policy_loss_2 = advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
                policy_loss = -torch.min(policy_loss_1, policy_loss_2).mean()
                pg_losses.append(policy_loss.item())
                clip_fractions.append(
                    torch.mean((torch.abs(ratio - 1) > clip_range).float()).item()
                )

                # Value loss on the TD(lambda) returns, unclipped (SB3's clip_range_vf=None).
                value_loss = F.mse_loss(rollout_data.returns, values)
                value_losses.append(value_loss.item())
                entropy_loss = -torch.mean(-log_prob) if entropy is None else -torch.mean(entropy)
                entropy_losses.append(entropy_loss.item())
                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
                if not torch.isfinite(loss):
                    raise Diverged(self.num_timesteps, "PPO loss")

                # Approximate KL for early stopping (SB3 issue #417; Schulman's k3 estimator).
                with torch.no_grad():
                    log_ratio = log_prob - rollout_data.old_log_prob
                    approx_kl_div = torch.mean((torch.exp(log_ratio) - 1) - log_ratio).item()
                    approx_kl_divs.append(approx_kl_div)
                if self.target_kl is not None and approx_kl_div > 1.5 * self.target_kl:
                    continue_training = False
                    break

                # The change from SB3: each role clips its own parameters and steps. SB3's global
                # clipping over every parameter happens first, only when max_grad_norm is set.
                for optimizer in optimizers:
                    optimizer.zero_grad()
                loss.backward()
                if self.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                for optimizer in optimizers:
                    optimizer.step()

            self._n_updates += 1
            if not continue_training:
                break

        explained_var = explained_variance(
            self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()
        )
        self.logger.record("train/entropy_loss", np.mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")


def policy_kwargs(config: Config) -> dict[str, Any]:
    heads = [] if config.network == "mlp_trunk" else list(config.net_arch)
    kwargs: dict[str, Any] = {
        "net_arch": {"pi": heads, "vf": list(heads)},
        "activation_fn": ACTIVATIONS[config.activation],
        "share_features_extractor": config.share_features_extractor,
        "ortho_init": config.ortho_init,
    }
    extractor = FEATURE_EXTRACTORS[config.network]
    if extractor is not None:
        kwargs["features_extractor_class"] = extractor
    if config.network == "mlp_trunk":
        # The separate MLPs' layers, shared: same depth and width, half the hidden parameters.
        kwargs["features_extractor_kwargs"] = {"hidden_sizes": list(config.net_arch)}
        kwargs["share_features_extractor"] = True
    return kwargs


def build(config: Config, specs: dict[str, OptimizerSpec], env, seed: int, device: str) -> SuitePPO:
    kwargs = policy_kwargs(config)
    if isinstance(env.action_space, spaces.Box):
        kwargs["log_std_init"] = config.log_std_init
    return SuitePPO(
        "CnnPolicy" if config.network == "nature_cnn" else "MlpPolicy",
        env,
        role_specs=dict(specs),
        optimizer_roles=config.optimizer_roles,
        features_extractor_role=config.features_extractor_role,
        learning_rate=SB3_LR_UNUSED,
        n_steps=config.n_steps,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        clip_range=config.clip_range,
        normalize_advantage=config.normalize_advantage,
        ent_coef=config.ent_coef,
        vf_coef=config.vf_coef,
        target_kl=config.target_kl,
        max_grad_norm=config.max_grad_norm,
        policy_kwargs=kwargs,
        seed=seed,
        device=device,
        verbose=0,
    )


def make_envs(config: Config, seed: int, stats_path=None):
    """Training envs (vectorized, maybe normalized) and a greedy-evaluation env.

    With ``normalize``, the evaluation env is a VecNormalize that does not update statistics or
    scale rewards; EvalAndCheckpoint copies training's observation statistics into it.
    """
    settings = (config.env_kwargs, config.max_episode_steps, config.atari)
    env = make_vec_env(config.env_id, seed, config.n_envs, *settings)
    if not config.normalize:
        return env, make_env(config.env_id, eval_seed(seed), *settings)
    env = (
        VecNormalize.load(stats_path, env) if stats_path else VecNormalize(env, gamma=config.gamma)
    )
    eval_env = DummyVecEnv([lambda: make_env(config.env_id, eval_seed(seed), *settings)])
    return env, VecNormalize(eval_env, training=False, norm_reward=False, gamma=config.gamma)


def training_env(env) -> DummyVecEnv:
    return env.venv if isinstance(env, VecNormalize) else env


def train(config: Config, specs: dict[str, OptimizerSpec], ctx: RunContext) -> Result:
    state = ctx.load_checkpoint()
    files = state["files"] if state else {}
    stats = ctx.run_dir / files["vec_normalize"] if "vec_normalize" in files else None
    env, eval_env = make_envs(config, ctx.seed, stats)
    if state is None:
        model = build(config, specs, env, ctx.seed, ctx.device)
    else:
        model, env, eval_env = resume_model(ctx, state, SuitePPO, env, eval_env, replay=False)
    learn_to_budget(ctx, model, eval_env, config, resumed=state is not None, replay=False)
    details: dict[str, Any] = {
        "optimizer_roles": config.optimizer_roles,
        "network": config.network,
        "env": describe(training_env(env).envs[0], config.atari),
        "n_envs": config.n_envs,
        "normalize": config.normalize,
    }
    details.update(role_details(model))
    for role, optimizer in model.role_optimizers().items():
        details[f"{role}_parameters"] = sum(p.numel() for p in optimizer.params)
    metrics = final_metrics(
        ctx.curves, config.total_timesteps, config.final_evals, config.return_threshold
    )
    return ctx.result(metrics, details=details)
