"""The RL experiments through the CLI at smoke budget (a non-default optimizer on every role),
their checkpoints, and the suite's default Adam DQN arm against stock stable-baselines3."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.evaluation import evaluate_policy

from agents.common import make_env
from agents.dqn import Config as DQNConfig
from agents.dqn import build as build_dqn
from suite.cli import main
from suite.config import load_experiment
from suite.optimizers import OptimizerSpec
from suite.schema import from_dict

# --keep-checkpoints: the tests read the last checkpoint of a finished run.
SMOKE = ["--budget", "smoke", "--seeds", "1", "--workers", "1", "--no-report", "--keep-checkpoints"]


def run(experiment: str, arm: str, results: Path, *overrides: str) -> dict:
    sets = [item for o in overrides for item in ("--set", o)]
    assert main(["run", experiment, *SMOKE, "--arms", arm, "--results", str(results), *sets]) == 0
    [path] = results.rglob("result.json")
    return json.loads(path.read_text())


def checkpoint_files(results: Path) -> dict:
    [path] = results.rglob("checkpoint.pt")
    return torch.load(path, weights_only=True)["state"]["files"]


def test_ppo_smoke_rmsprop_on_both_roles(tmp_path):
    result = run("ppo-shared-vs-split-adam", "rmsprop_shared", tmp_path)
    assert result["status"] == "done"
    details = result["details"]
    assert details["actor_optimizer"] == details["critic_optimizer"] == "RMSprop"
    assert details["actor_optimizer_steps"] == details["critic_optimizer_steps"] > 0
    recorded = {"eval/return_final", "eval/return_auc", "train/episode_return_auc"}
    assert recorded | {"eval/steps_to_threshold"} <= set(result["metrics"])
    assert result["metrics"]["eval/reached_threshold"] in (0.0, 1.0)
    files = checkpoint_files(tmp_path)  # the mid-run checkpoint: a model, no replay buffer
    assert "model" in files and "replay" not in files


def test_sac_smoke_kfac_on_actor_and_critic_sgd_on_entropy(tmp_path):
    result = run(
        "sac-halfcheetah-kfac-vs-adam",
        "kfac_critic_actor",
        tmp_path,
        "arms.kfac_critic_actor.entropy={optimizer: sgd, lr: 1.0e-3}",
    )
    assert result["status"] == "done"
    details = result["details"]
    # `kfac` is the K-FAC of ACKTR (natural-gradient SGD with the KL clip; issue: arms that are
    # what their names say), suite/optimizers/kfac.py: KFACNatural.
    assert details["actor_optimizer"] == details["critic_optimizer"] == "KFACNatural"
    assert details["entropy_optimizer"] == "SGD"
    assert np.isfinite(result["metrics"]["eval/return_final"])
    files = checkpoint_files(tmp_path)
    assert {"model", "replay"} <= set(files)
    from agents.sac import SuiteSAC

    run_dir = next(tmp_path.rglob("checkpoint.pt")).parent
    model = SuiteSAC.load(run_dir / files["model"], device="cpu")
    assert type(model.ent_coef_optimizer.inner).__name__ == "SGD"


def test_dqn_smoke_nature_rmsprop_with_mse_on_minatar(tmp_path):
    pytest.importorskip("minatar")
    result = run("dqn-breakout-adam-vs-rmsprop", "rmsprop_mse", tmp_path)
    assert result["status"] == "done"
    details = result["details"]
    assert details["q_optimizer"] == "RMSpropDeepMind" and details["loss"] == "mse"
    assert details["network"] == "dopamine_minatar"  # Dopamine's MinAtar DQN, the proxy
    assert details["env"]["max_episode_steps"] == 200  # the smoke budget's time limit


def test_sac_threshold_is_fixed_in_the_file():
    for budget, threshold in (("quick", 3000.0), ("full", 5000.0)):
        assert load_experiment("sac-halfcheetah-kfac-vs-adam", budget).task.return_threshold == (
            threshold
        )


def test_default_adam_dqn_arm_matches_stock_sb3():
    # Stock SB3 DQN: Adam at the given lr, Huber loss, global-norm clipping at max_grad_norm=10.
    # The suite's arm: the same Adam as the q role's spec, clip_grad_norm 10.
    settings = {
        "learning_starts": 200,
        "buffer_size": 2000,
        "batch_size": 32,
        "train_freq": 4,
        "gradient_steps": 1,
        "target_update_interval": 100,
        "exploration_fraction": 0.2,
        "exploration_final_eps": 0.05,
        "gamma": 0.99,
    }
    config = DQNConfig(net_arch=[32, 32], loss="huber", **settings)
    spec = from_dict(OptimizerSpec, {"optimizer": "adam", "lr": 1e-3, "clip_grad_norm": 10})

    def suite_dqn():
        return build_dqn(config, {"q": spec}, make_env("CartPole-v1", 0), seed=0, device="cpu")

    def stock_dqn():
        return DQN(
            "MlpPolicy",
            make_env("CartPole-v1", 0),
            learning_rate=1e-3,
            max_grad_norm=10,
            policy_kwargs={"net_arch": [32, 32]},
            seed=0,
            device="cpu",
            **settings,
        )

    # One after the other: SB3 seeds the global numpy and torch generators when a model is
    # built, and replay sampling draws from them.
    models, returns = [], []
    for make in (suite_dqn, stock_dqn):
        model = make()
        model.learn(1500)
        episode_returns, _ = evaluate_policy(
            model, make_env("CartPole-v1", 7), 5, deterministic=True, return_episode_rewards=True
        )
        models.append(model)
        returns.append(episode_returns)
    suite_model, stock = models
    assert suite_model.policy.optimizer.steps == (1500 - 200) // 4
    assert returns[0] == returns[1]
    for a, b in zip(suite_model.q_net.parameters(), stock.q_net.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment",
    ["ppo-shared-vs-split-adam", "sac-halfcheetah-kfac-vs-adam", "dqn-breakout-adam-vs-rmsprop"],
)
def test_every_arm_at_smoke_budget(experiment, tmp_path):
    args = ["run", experiment, *SMOKE, "--results", str(tmp_path)]
    assert main(args) == 0
    results = [json.loads(p.read_text()) for p in tmp_path.rglob("result.json")]
    assert len(results) == len(load_experiment(experiment, "smoke").arms)
    assert all(r["status"] == "done" for r in results)
