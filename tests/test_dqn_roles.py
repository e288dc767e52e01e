"""The arm's spec for DQN's ``q`` role is in force after learn() and after save/load.

stable-baselines3 would rebuild the optimizer from its own optimizer_class and reset every
param group's lr to its schedule at each train(); these tests fail if either happens.
"""

from __future__ import annotations

import pytest
import torch

from agents.common import make_env
from agents.dqn import Config, SuiteDQN, build
from suite.optimizers import OptimizerSpec, RoleOptimizer
from suite.optimizers.extra import Lookahead, RMSpropDeepMind
from suite.schema import from_dict

SPEC = {
    "optimizer": "rmsprop_deepmind",
    "lr": 1e-3,
    "kwargs": {"decay": 0.9, "eps": 0.02},
    "schedule": {"name": "exponential", "kwargs": {"gamma": 0.99}},
    "clip_grad_norm": 5.0,
    "lookahead": {"k": 3, "alpha": 0.5},
}


def small_config() -> Config:
    return Config(
        total_timesteps=400,
        learning_starts=100,
        train_freq=10,
        gradient_steps=2,
        batch_size=16,
        buffer_size=1000,
        net_arch=[16],
    )


def check_in_force(model: SuiteDQN) -> None:
    optimizer = model.policy.optimizer
    assert isinstance(optimizer, RoleOptimizer)
    assert isinstance(optimizer.optimizer, Lookahead)
    assert isinstance(optimizer.inner, RMSpropDeepMind)
    assert optimizer.inner.defaults["decay"] == 0.9 and optimizer.inner.defaults["eps"] == 0.02
    assert optimizer.spec.clip_grad_norm == 5.0
    # Exponential schedule stepped once per optimizer step, untouched by SB3's lr reset.
    assert optimizer.lr == pytest.approx(1e-3 * 0.99**optimizer.steps)
    parameters = {id(p) for p in model.q_net.parameters()}
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == parameters


def test_q_spec_in_force_after_learn_and_after_save_load(tmp_path):
    config = small_config()
    specs = {"q": from_dict(OptimizerSpec, SPEC)}
    model = build(config, specs, make_env("CartPole-v1", 0), seed=0, device="cpu")
    model.learn(config.total_timesteps)
    check_in_force(model)
    steps = model.policy.optimizer.steps
    assert steps == (config.total_timesteps - config.learning_starts) // 10 * 2

    model.save(tmp_path / "model.zip")
    loaded = SuiteDQN.load(tmp_path / "model.zip", env=make_env("CartPole-v1", 0), device="cpu")
    check_in_force(loaded)
    assert loaded.policy.optimizer.steps == steps
    assert loaded.loss == "huber"
    state, loaded_state = (
        model.policy.optimizer.inner.state_dict()["state"],
        loaded.policy.optimizer.inner.state_dict()["state"],
    )
    for key in state:
        assert torch.equal(state[key]["square_avg"], loaded_state[key]["square_avg"])

    loaded.learn(200, reset_num_timesteps=False)
    check_in_force(loaded)
    assert loaded.policy.optimizer.steps > steps


def test_mse_loss_setting_reaches_the_model():
    config = small_config()
    config.loss = "mse"
    model = build(
        config,
        {"q": from_dict(OptimizerSpec, {"optimizer": "adam", "lr": 1e-3})},
        make_env("CartPole-v1", 0),
        seed=0,
        device="cpu",
    )
    assert model.loss == "mse"
