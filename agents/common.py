"""What the RL trainers share: environments, greedy evaluation, checkpoints, final metrics.

Evaluation follows the RL Zoo / CleanRL habit: greedy (deterministic) episodes on a separate
environment instance every ``eval_every`` steps. The final return is the mean over the last
``final_evals`` evaluations (less sensitive to one lucky evaluation than the last alone), and the
area under the evaluation curve, divided by the steps, measures sample efficiency (mean return
over training). Steps to a return threshold are recorded as censored when never reached.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    VecEnv,
    VecNormalize,
    sync_envs_normalization,
)

from agents.envs import AtariSettings, make
from agents.sb3_roles import parameters_finite
from suite.optimizers import role_details as optimizer_role_details
from suite.run.context import Diverged, RunContext


def make_env(
    env_id: str,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
    max_episode_steps: int | None = None,
    atari: AtariSettings | None = None,
) -> gym.Env:
    """One Monitor-wrapped environment, seeded (the Monitor gives episode statistics).

    :param env_kwargs, max_episode_steps, atari: see agents/envs.py ``make``.
    """
    env = make(env_id, env_kwargs, max_episode_steps, atari)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


def make_vec_env(
    env_id: str,
    seed: int,
    n_envs: int,
    env_kwargs: dict[str, Any] | None = None,
    max_episode_steps: int | None = None,
    atari: AtariSettings | None = None,
) -> DummyVecEnv:
    """``n_envs`` copies stepped in one process (env i seeded ``seed + i``).

    DummyVecEnv, not SubprocVecEnv: the suite already runs one process per run on each core, and
    with small networks the per-step work is too small to pay for inter-process messages.
    """
    return DummyVecEnv(
        [
            partial(make_env, env_id, seed + i, env_kwargs, max_episode_steps, atari)
            for i in range(n_envs)
        ]
    )


@dataclass
class StackSettings:
    """The settings of the SAC and DQN seed stacks (agents/stacked.py) their Configs share."""

    cuda_graphs: bool = True
    """capture the stacked update (all seeds and roles, optimizer steps included) and the batch
    of acting as CUDA graphs on CUDA (agents/stacked.py, suite/run/graphs.py): only with
    --stack-seeds; off by itself where a role's spec has a capture blocker (K-FAC, a schedule,
    Lookahead: suite.optimizers.capture_blockers), and each result's ``details.cuda_graphs``
    says why. The lone stable-baselines3 trainer ignores it. A speed setting: same updates up to
    float rounding (suite.config.SPEED_SETTINGS)."""


@dataclass
class EvalSettings:
    """The evaluation settings every RL trainer's Config shares (DQN, PPO, SAC: each Config
    subclasses this, so experiment files keep flat keys such as ``task.eval_every``)."""

    eval_every: int = 5_000
    """environment steps between greedy evaluations (and checkpoints)."""
    eval_episodes: int = 5
    """episodes per evaluation, on an evaluation env of its own (``eval_seed``)."""
    final_evals: int = 3
    """the final return is the mean over this many last evaluations."""
    return_threshold: float | None = None
    """if set, steps to reach this eval return are recorded (censored when never reached)."""
    arm_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """retired, must stay empty: settings that differ by arm go in ``arms.<arm>.task``.

    A task setting that differs by arm (DQN's TD loss in a 2x2 optimizer x loss design, PPO's
    shared trunk) goes in the arm's own ``task:`` mapping, merged over the task
    (suite/config.py). The field stays, always empty, so that the run ids of runs recorded
    before it moved (a hash of the task) stay the same."""

    def validate_evaluation(self) -> None:
        for name in ("eval_every", "eval_episodes", "final_evals"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.arm_overrides:
            arm = next(iter(self.arm_overrides))
            raise ValueError(
                f"arm_overrides moved: write arm {arm!r}'s settings as arms.{arm}.task "
                "(merged over the task)"
            )


def eval_seed(seed: int) -> int:
    """Evaluation environments get their own seed stream, apart from training's."""
    return 1_000_003 + seed


class EvalAndCheckpoint(BaseCallback):
    """Every ``eval_every`` steps: greedy evaluation, divergence check, checkpoint.

    With a VecNormalize-wrapped training env, ``eval_env`` must be one too (``training=False``,
    ``norm_reward=False``): its observation statistics are copied from training's before each
    evaluation (SB3's EvalCallback does the same), and returns are the raw ones (the Monitor sits
    inside). Training episodes (Monitor statistics of the last 100) are recorded alongside.
    """

    def __init__(
        self,
        ctx: RunContext,
        eval_env: gym.Env | VecEnv,
        total: int,
        eval_every: int,
        eval_episodes: int,
        save,
    ):
        super().__init__()
        self.ctx, self.eval_env, self.total = ctx, eval_env, total
        self.eval_every, self.eval_episodes, self.save = eval_every, eval_episodes, save
        self.next_eval = eval_every
        self.save_due = False

    def _on_step(self) -> bool:
        steps = self.num_timesteps
        self.ctx.progress(steps, self.total)
        if steps >= self.next_eval or steps >= self.total:
            self.next_eval = (steps // self.eval_every + 1) * self.eval_every
            self.evaluate()
            self.save_due = steps < self.total
        # Stop exactly at the budget: SB3 collects in chunks (train_freq, n_steps) and would
        # otherwise overshoot total_timesteps by up to one chunk.
        return steps < self.total

    def _on_rollout_start(self) -> None:
        # The checkpoint after an evaluation is written here, between rollouts: every collected
        # transition is stored and trained on, and _last_obs matches the env. Mid-step (in
        # _on_step) the step's transition is not yet stored and a train_freq chunk would be
        # split, so a resumed run could not continue exactly as an uninterrupted one.
        if self.save_due:
            self.save_due = False
            self.save(self.model)

    def evaluate(self) -> None:
        steps = self.num_timesteps
        if not parameters_finite(self.model.policy):
            raise Diverged(steps, "policy parameters")
        if self.model.get_vec_normalize_env() is not None:
            sync_envs_normalization(self.model.get_env(), self.eval_env)
        returns, lengths = evaluate_policy(
            self.model,
            self.eval_env,
            self.eval_episodes,
            deterministic=True,
            return_episode_rewards=True,
        )
        self.ctx.record(
            steps,
            {
                "eval/return": float(np.mean(returns)),
                "eval/return_std": float(np.std(returns)),
                "eval/episode_length": float(np.mean(lengths)),
                **self.training_episodes(),
            },
        )

    def training_episodes(self) -> dict[str, float]:
        """Mean return and length of the last (up to 100) training episodes, from Monitor."""
        episodes = self.model.ep_info_buffer
        if not episodes:
            return {}
        return {
            "train/episode_return": float(np.mean([e["r"] for e in episodes])),
            "train/episode_length": float(np.mean([e["l"] for e in episodes])),
        }


def save_sb3_checkpoint(ctx: RunContext, model, replay: bool, eval_env=None) -> None:
    """Model (with its optimizers' state), replay buffer and VecNormalize statistics (when the
    model has them), the training and evaluation environments as they stand (mid-episode, when
    they can be pickled) and the action space's generator, then the pointer to them.

    Files carry the step in their name and the small checkpoint.pt, written last and atomically,
    names the pair to resume from; a kill in between leaves the previous pair in force.
    """
    step = model.num_timesteps
    model_path = ctx.run_dir / f"model-{step}.zip"
    model.save(_tmp(model_path))
    os.replace(_tmp(model_path), model_path)
    files = {"model": model_path.name}
    if replay:
        buffer_path = ctx.run_dir / f"replay-{step}.pkl"
        model.save_replay_buffer(_tmp(buffer_path))
        os.replace(_tmp(buffer_path), buffer_path)
        files["replay"] = buffer_path.name
    normalize = model.get_vec_normalize_env()
    if normalize is not None:
        stats_path = ctx.run_dir / f"vecnormalize-{step}.pkl"
        normalize.save(_tmp(stats_path))
        os.replace(_tmp(stats_path), stats_path)
        files["vec_normalize"] = stats_path.name
    envs_path = ctx.run_dir / f"envs-{step}.pkl"
    try:
        # VecNormalize's own pickle drops the discounted-return accumulator that scales rewards
        # mid-episode (it restarts at 0 on load), so it travels with the environments.
        returns = None if normalize is None else normalize.returns.copy()
        snapshot = pickle.dumps(
            {"train": _gym_envs(model.get_env()), "eval": _gym_envs(eval_env), "returns": returns}
        )
    except Exception as error:  # noqa: BLE001 - an env that cannot be pickled: resume not exact
        ctx.log(f"environments not saved ({type(error).__name__}: {error}); resume is not exact")
    else:
        _tmp(envs_path).write_bytes(snapshot)
        os.replace(_tmp(envs_path), envs_path)
        files["envs"] = envs_path.name
    action_rng = model.action_space.np_random.bit_generator.state
    ctx.save_checkpoint(
        {"timesteps": step, "files": files, "action_space_rng": action_rng},
        files=tuple(files.values()),
    )
    keep = set(files.values())
    saved = ("model-*.zip", "replay-*.pkl", "vecnormalize-*.pkl", "envs-*.pkl")
    for old in [path for pattern in saved for path in ctx.run_dir.glob(pattern)]:
        if old.name not in keep:
            old.unlink(missing_ok=True)


def _gym_envs(env) -> list[gym.Env] | None:
    """The gymnasium envs inside ``env`` (a VecEnv's, or ``env`` itself)."""
    if env is None:
        return None
    return list(env.unwrapped.envs) if isinstance(env, VecEnv) else [env]


def _put_envs(env, saved: list[gym.Env] | None):
    """``env`` with its gymnasium envs replaced by the saved ones (a VecEnv in place)."""
    if env is None or saved is None:
        return env
    if isinstance(env, VecEnv):
        env.unwrapped.envs[:] = saved
        return env
    return saved[0]


def load_env_state(ctx: RunContext, state: dict[str, Any], env, eval_env) -> tuple[Any, Any, bool]:
    """The training and evaluation environments as the checkpoint left them.

    :returns: ``(env, eval_env, restored)``; ``restored`` is False when the envs could not be
        saved: then the caller must reset the training env (``model._last_obs = None``).
    """
    name = state["files"].get("envs")
    if name is None:
        return env, eval_env, False
    # A pickle written by this run itself, trusted as SB3's replay buffer pickle is.
    saved = pickle.loads((ctx.run_dir / name).read_bytes())  # noqa: S301
    if isinstance(env, VecNormalize) and saved.get("returns") is not None:
        env.returns = saved["returns"]
    return _put_envs(env, saved["train"]), _put_envs(eval_env, saved["eval"]), True


def restore_random_state(ctx: RunContext, model, state: dict[str, Any]) -> None:
    """After SB3's ``load`` (which reseeds everything from the run's seed): the generators as
    the checkpoint saved them. Call it last, right before ``learn``."""
    ctx.restore_rng()
    if "action_space_rng" in state:
        model.action_space.np_random.bit_generator.state = state["action_space_rng"]


def resume_model(
    ctx: RunContext, state: dict[str, Any], algorithm, env, eval_env, replay: bool
) -> tuple[Any, Any, Any]:
    """Reload a checkpointed SB3 model: the environments first (mid-episode where they could be
    saved), then the model with its role optimizers and the replay buffer, and the RNG states
    last, right before learning goes on. Returns (model, env, eval_env)."""
    env, eval_env, restored = load_env_state(ctx, state, env, eval_env)
    # With the env restored mid-episode, keep SB3's saved last observation (force_reset would
    # restart the episode); an env that could not be saved restarts from a reset.
    model = algorithm.load(
        ctx.run_dir / state["files"]["model"], env=env, device=ctx.device, force_reset=not restored
    )
    if replay:
        model.load_replay_buffer(ctx.run_dir / state["files"]["replay"])
    restore_random_state(ctx, model, state)
    return model, env, eval_env


def learn_to_budget(
    ctx: RunContext, model, eval_env, config: Any, resumed: bool, replay: bool
) -> None:
    """Train to ``config.total_timesteps``: greedy evaluation and a checkpoint every
    ``config.eval_every`` steps, continuing the step count of a resumed model."""
    callback = EvalAndCheckpoint(
        ctx,
        eval_env,
        config.total_timesteps,
        config.eval_every,
        config.eval_episodes,
        save=lambda m: save_sb3_checkpoint(ctx, m, replay=replay, eval_env=eval_env),
    )
    callback.next_eval = (model.num_timesteps // config.eval_every + 1) * config.eval_every
    model.learn(
        config.total_timesteps - model.num_timesteps,
        callback=callback,
        reset_num_timesteps=not resumed,
    )


def role_details(model) -> dict[str, Any]:
    """Each role's optimizer class, final lr and step count, as they were in force."""
    return optimizer_role_details(model.role_optimizers())


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


def final_metrics(
    curves: dict[str, list[list[float]]], total: int, final_evals: int, threshold: float | None
) -> dict[str, float]:
    """Final return, areas under the curves, and steps to threshold (censored if never reached).

    :returns: ``eval/return_final`` (mean of the last ``final_evals`` evaluations),
        ``eval/return_auc`` (trapezoidal area under the eval curve from step 0, divided by
        ``total`` steps: the mean return over training), ``train/episode_return_auc`` (the same
        area under the training episodes' return, SB3's mean of the last 100 episodes at each
        evaluation: the learning curve CleanRL and the RL Zoo plot; it stays below the ceiling
        longer than a greedy evaluation), and with a threshold ``eval/steps_to_threshold``
        (``total`` when censored) and ``eval/reached_threshold``.
    """
    curve = np.array(curves.get("eval/return", []), dtype=float).reshape(-1, 2)
    if len(curve) == 0:
        return {}
    steps, returns = curve[:, 0], curve[:, 1]
    metrics = {"eval/return_final": float(np.mean(returns[-final_evals:]))}
    metrics["eval/return_auc"] = _mean_over_steps(curve, total)
    train = np.array(curves.get("train/episode_return", []), dtype=float).reshape(-1, 2)
    if len(train):
        metrics["train/episode_return_auc"] = _mean_over_steps(train, total)
    if threshold is not None:
        reached = np.nonzero(returns >= threshold)[0]
        metrics["eval/reached_threshold"] = float(len(reached) > 0)
        metrics["eval/steps_to_threshold"] = (
            float(steps[reached[0]]) if len(reached) else float(total)
        )
    return metrics


def _mean_over_steps(curve: np.ndarray, total: int) -> float:
    """Trapezoidal area under (step, value) points from step 0, divided by ``total`` steps;
    before the first point the curve is held at its first value."""
    steps, values = curve[:, 0], curve[:, 1]
    xs, ys = np.concatenate([[0.0], steps]), np.concatenate([[values[0]], values])
    area = float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))
    return area / max(total, 1)
