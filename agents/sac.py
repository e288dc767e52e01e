"""SAC (Haarnoja et al. 2018) with stable-baselines3, roles ``actor``, ``critic``, ``entropy``.

Each role's spec is in force from the first step to the last and across save/load
(agents/sb3_roles.py): the actor (policy network), the critic (both Q-networks; the target
networks are Polyak copies, not optimized), and the entropy coefficient. SB3 hard-codes Adam
for the last (``ent_coef_optimizer``); here it is the ``entropy`` role's spec like any other.

With a fixed ``ent_coef`` (a number) there is nothing to learn and no ``entropy`` role: the
experiment's arms then name ``actor`` and ``critic`` only. With ``ent_coef: auto`` the
coefficient is learned towards the target entropy -dim(A) (Haarnoja et al. 2018b, "Soft
Actor-Critic Algorithms and Applications", §5; SB3 learns its log, see softlearning#37).

K-FAC needs the layers it preconditions: the actor's and the critic's modules are passed to
``build_role_optimizer``, and K-FAC's forward hooks collect only from those modules (the target
critic is a separate module, see suite/optimizers/kfac.py on SB3's SAC).

Run: ``python -m suite run sac-halfcheetah-kfac-vs-adam``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from stable_baselines3 import SAC

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
from agents.envs import check_env_id, check_trains, describe
from agents.sb3_roles import SB3_LR_UNUSED, RoleOptimizers
from suite.optimizers import OptimizerSpec
from suite.result import Result
from suite.run.context import RunContext


@dataclass
class Config(StackSettings, EvalSettings):
    """SAC task settings (the ``task`` and ``budgets`` keys of an experiment file).

    Defaults are SAC's (Haarnoja et al. 2018a, Table 1: two 256-unit hidden layers, batch 256,
    replay 1e6, gamma 0.99, tau 0.005, one gradient step per environment step).
    """

    env_id: str = "Pendulum-v1"
    """a gymnasium id with a continuous (Box) action space."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """passed to gymnasium.make, recorded with the run."""
    max_episode_steps: int | None = None
    """time limit; None keeps the registered one."""
    total_timesteps: int = 50_000
    """environment steps of training."""
    buffer_size: int = 1_000_000
    learning_starts: int = 10_000
    """uniformly random actions before learning starts (SAC's HalfCheetah setting)."""
    batch_size: int = 256
    tau: float = 0.005
    """Polyak factor of the target critic."""
    gamma: float = 0.99
    train_freq: int = 1
    """environment steps between updates."""
    gradient_steps: int = 1
    """gradient steps per update."""
    ent_coef: Literal["auto"] | float = "auto"
    """'auto': learned (the ``entropy`` role); a number: fixed, and no ``entropy`` role."""
    ent_coef_init: float = 1.0
    """initial value of a learned coefficient (SB3's default)."""
    net_arch: list[int] = field(default_factory=lambda: [256, 256])
    """hidden sizes of the actor and of each Q-network."""

    def validate(self) -> None:
        for name in (
            "total_timesteps",
            "buffer_size",
            "batch_size",
            "train_freq",
            "gradient_steps",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not (0 <= self.gamma <= 1 and 0 < self.tau <= 1):
            raise ValueError("gamma must be in [0, 1] and tau in (0, 1]")
        if self.ent_coef != "auto" and self.ent_coef <= 0:
            raise ValueError("ent_coef must be 'auto' or > 0")
        if self.ent_coef_init <= 0:
            raise ValueError("ent_coef_init must be > 0")
        check_env_id(self.env_id)
        check_trains(self.total_timesteps, self.learning_starts, self.train_freq)
        self.validate_evaluation()


def roles(config: Config) -> tuple[str, ...]:
    if config.ent_coef == "auto":
        return ("actor", "critic", "entropy")
    return ("actor", "critic")


class SuiteSAC(RoleOptimizers, SAC):
    """SB3 SAC whose actor, critic and entropy-coefficient optimizers come from role specs."""

    def __init__(self, *args, role_specs: dict | None = None, **kwargs):
        self.role_specs = role_specs
        super().__init__(*args, **kwargs)

    def critic_parameters(self) -> list:
        # SB3 leaves a features extractor shared with the actor to the actor's optimizer.
        if self.policy.share_features_extractor:
            return [p for n, p in self.critic.named_parameters() if "features_extractor" not in n]
        return list(self.critic.parameters())

    def role_parameters(self):
        roles = {
            "actor": ("actor.optimizer", list(self.actor.parameters()), [self.actor]),
            "critic": ("critic.optimizer", self.critic_parameters(), [self.critic]),
        }
        if self.log_ent_coef is not None:
            # A bare tensor, no layers: K-FAC cannot precondition it (it says so).
            roles["entropy"] = ("ent_coef_optimizer", [self.log_ent_coef], [])
        return roles

    def trainable_parameters(self):
        extra = [self.log_ent_coef] if self.log_ent_coef is not None else []
        return [*self.actor.parameters(), *self.critic_parameters(), *extra]


def build(config: Config, specs: dict[str, OptimizerSpec], env, seed: int, device: str) -> SuiteSAC:
    ent_coef = f"auto_{config.ent_coef_init}" if config.ent_coef == "auto" else config.ent_coef
    return SuiteSAC(
        "MlpPolicy",
        env,
        role_specs=dict(specs),
        learning_rate=SB3_LR_UNUSED,
        buffer_size=config.buffer_size,
        learning_starts=config.learning_starts,
        batch_size=config.batch_size,
        tau=config.tau,
        gamma=config.gamma,
        train_freq=config.train_freq,
        gradient_steps=config.gradient_steps,
        ent_coef=ent_coef,
        policy_kwargs={"net_arch": list(config.net_arch)},
        seed=seed,
        device=device,
        verbose=0,
    )


def train(config: Config, specs: dict[str, OptimizerSpec], ctx: RunContext) -> Result:
    settings = (config.env_kwargs, config.max_episode_steps)
    env = make_env(config.env_id, ctx.seed, *settings)
    eval_env = make_env(config.env_id, eval_seed(ctx.seed), *settings)
    state = ctx.load_checkpoint()
    if state is None:
        model = build(config, specs, env, ctx.seed, ctx.device)
    else:
        model, env, eval_env = resume_model(ctx, state, SuiteSAC, env, eval_env, replay=True)
    learn_to_budget(ctx, model, eval_env, config, resumed=state is not None, replay=True)
    details: dict[str, Any] = {
        "env": describe(env),
        "ent_coef": config.ent_coef,
        **role_details(model),
    }
    if model.log_ent_coef is not None:
        details["ent_coef_final"] = float(model.log_ent_coef.exp().item())
    metrics = final_metrics(
        ctx.curves, config.total_timesteps, config.final_evals, config.return_threshold
    )
    return ctx.result(metrics, details=details)
