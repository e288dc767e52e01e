"""What the RL trainers share: environments, greedy evaluation, checkpoints, final metrics.

Evaluation follows the RL Zoo / CleanRL habit: greedy (deterministic) episodes on a separate
environment instance every ``eval_every`` steps. The final return is the mean over the last
``final_evals`` evaluations (less sensitive to one lucky evaluation than the last alone), and the
area under the evaluation curve, divided by the steps, measures sample efficiency (mean return
over training). Steps to a return threshold are recorded as censored when never reached.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from agents.sb3_roles import parameters_finite
from suite.runner import Diverged, RunContext


def make_env(env_id: str, seed: int, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """One Monitor-wrapped environment, seeded (the Monitor gives episode statistics)."""
    from agents.envs import make

    env = Monitor(make(env_id, env_kwargs or {}))
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


def eval_seed(seed: int) -> int:
    """Evaluation environments get their own seed stream, apart from training's."""
    return 1_000_003 + seed


class EvalAndCheckpoint(BaseCallback):
    """Every ``eval_every`` steps: greedy evaluation, divergence check, checkpoint."""

    def __init__(
        self,
        ctx: RunContext,
        eval_env: gym.Env,
        total: int,
        eval_every: int,
        eval_episodes: int,
        save,
    ):
        super().__init__()
        self.ctx, self.eval_env, self.total = ctx, eval_env, total
        self.eval_every, self.eval_episodes, self.save = eval_every, eval_episodes, save
        self.next_eval = eval_every

    def _on_step(self) -> bool:
        steps = self.num_timesteps
        self.ctx.progress(steps, self.total)
        if steps >= self.next_eval or steps >= self.total:
            self.next_eval = (steps // self.eval_every + 1) * self.eval_every
            self.evaluate()
            if steps < self.total:
                self.save(self.model)
        # Stop exactly at the budget: SB3 collects in chunks (train_freq, n_steps) and would
        # otherwise overshoot total_timesteps by up to one chunk.
        return steps < self.total

    def evaluate(self) -> None:
        steps = self.num_timesteps
        if not parameters_finite(self.model.policy):
            raise Diverged(steps, "policy parameters")
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
            },
        )


def save_sb3_checkpoint(ctx: RunContext, model, replay: bool) -> None:
    """Model (with its optimizers' state) and replay buffer, then the pointer to them.

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
    ctx.save_checkpoint({"timesteps": step, "files": files})
    keep = set(files.values())
    for old in [*ctx.run_dir.glob("model-*.zip"), *ctx.run_dir.glob("replay-*.pkl")]:
        if old.name not in keep:
            old.unlink(missing_ok=True)


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


def final_metrics(
    curves: dict[str, list[list[float]]], total: int, final_evals: int, threshold: float | None
) -> dict[str, float]:
    """Final return, area under the curve, and steps to threshold (censored if never reached).

    :returns: ``eval/return_final`` (mean of the last ``final_evals`` evaluations),
        ``eval/return_auc`` (trapezoidal area under the eval curve from step 0, divided by
        ``total`` steps: the mean return over training), and with a threshold
        ``eval/steps_to_threshold`` (``total`` when censored) and ``eval/reached_threshold``.
    """
    curve = np.array(curves.get("eval/return", []), dtype=float).reshape(-1, 2)
    if len(curve) == 0:
        return {}
    steps, returns = curve[:, 0], curve[:, 1]
    metrics = {"eval/return_final": float(np.mean(returns[-final_evals:]))}
    # Before the first evaluation, the curve is held at the first evaluated value.
    xs, ys = np.concatenate([[0.0], steps]), np.concatenate([[returns[0]], returns])
    area = float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))
    metrics["eval/return_auc"] = area / max(total, 1)
    if threshold is not None:
        reached = np.nonzero(returns >= threshold)[0]
        metrics["eval/reached_threshold"] = float(len(reached) > 0)
        metrics["eval/steps_to_threshold"] = (
            float(steps[reached[0]]) if len(reached) else float(total)
        )
    return metrics
