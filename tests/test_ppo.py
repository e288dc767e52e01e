"""PPO's roles: one shared optimizer or actor + critic, disjoint and covering; one Adam equals two
Adams (CLAIMS.md 4); each role's class, lr and schedule in force after learn() and save/load;
checkpoints through agents/common.save_sb3_checkpoint."""

from __future__ import annotations

import pytest
import torch

from agents.ppo import Config, SuitePPO, build, make_envs
from suite.optimizers import OptimizerSpec, RoleOptimizer
from suite.schema import from_dict

ADAM = {"optimizer": "adam", "lr": 3e-4, "kwargs": {"eps": 1e-5}}


def small(env_id: str = "CartPole-v1", **settings) -> Config:
    return Config(env_id=env_id, n_steps=64, batch_size=32, n_epochs=2, **settings)


def trained(config: Config, specs: dict, steps: int = 256) -> SuitePPO:
    env, _ = make_envs(config, seed=0)
    specs = {role: from_dict(OptimizerSpec, spec) for role, spec in specs.items()}
    model = build(config, specs, env, seed=0, device="cpu")
    model.learn(steps)
    return model


def parameters_equal(a: SuitePPO, b: SuitePPO) -> bool:
    return all(
        torch.equal(x, y) for x, y in zip(a.policy.parameters(), b.policy.parameters(), strict=True)
    )


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_one_adam_equals_two_adams_without_clipping(env_id):
    # Adam is per parameter, so splitting it over disjoint parameter sets changes nothing: the
    # parameters are bit-identical after 256 steps (16 optimizer steps) on CPU.
    shared = trained(small(env_id, optimizer_roles="shared"), {"policy": ADAM})
    split = trained(small(env_id, optimizer_roles="split"), {"actor": ADAM, "critic": ADAM})
    assert shared.policy.optimizer.steps == 16
    assert parameters_equal(shared, split)


def test_global_clipping_reproduces_one_clipped_adam_and_per_role_clipping_does_not():
    clipped = {**ADAM, "clip_grad_norm": 0.5}
    shared = trained(small(optimizer_roles="shared"), {"policy": clipped})
    global_clip = trained(
        small(optimizer_roles="split", max_grad_norm=0.5), {"actor": ADAM, "critic": ADAM}
    )
    per_role = trained(small(optimizer_roles="split"), {"actor": clipped, "critic": clipped})
    assert parameters_equal(shared, global_clip)
    assert not parameters_equal(shared, per_role)  # the one place where they differ


def role_sets(model: SuitePPO) -> dict[str, set[int]]:
    return {
        role: {id(p) for p in params} for role, (_, params, _) in model.role_parameters().items()
    }


@pytest.mark.parametrize(
    ("network", "owner"), [("mlp", "actor"), ("mlp_trunk", "actor"), ("mlp_trunk", "critic")]
)
def test_split_roles_are_disjoint_and_cover_the_policy(network, owner):
    config = small("Pendulum-v1", optimizer_roles="split", network=network)
    config.features_extractor_role = owner
    env, _ = make_envs(config, seed=0)
    spec = from_dict(OptimizerSpec, ADAM)
    model = build(config, {"actor": spec, "critic": spec}, env, seed=0, device="cpu")
    sets = role_sets(model)
    assert not sets["actor"] & sets["critic"]
    assert sets["actor"] | sets["critic"] == {id(p) for p in model.policy.parameters()}
    assert id(model.policy.log_std) in sets["actor"]
    assert {id(p) for p in model.policy.value_net.parameters()} <= sets["critic"]
    trunk = {id(p) for p in model.policy.features_extractor.parameters()}
    assert trunk <= sets[owner]
    assert bool(trunk) == (network == "mlp_trunk")
    assert model.policy.optimizer is None  # SB3's own optimizer over everything is gone


ACTOR = {
    "optimizer": "rmsprop",
    "lr": 1e-3,
    "kwargs": {"alpha": 0.9},
    "schedule": {"name": "exponential", "kwargs": {"gamma": 0.99}},
    "clip_grad_norm": 1.0,
}
CRITIC = {"optimizer": "sgd", "lr": 5e-3, "kwargs": {"momentum": 0.5}}


def check_in_force(model: SuitePPO) -> None:
    actor, critic = model.policy.actor_optimizer, model.policy.critic_optimizer
    assert isinstance(actor, RoleOptimizer) and isinstance(critic, RoleOptimizer)
    assert type(actor.inner).__name__ == "RMSprop" and actor.inner.defaults["alpha"] == 0.9
    assert type(critic.inner).__name__ == "SGD" and critic.inner.defaults["momentum"] == 0.5
    assert actor.lr == pytest.approx(1e-3 * 0.99**actor.steps)
    assert critic.lr == 5e-3
    assert actor.spec.clip_grad_norm == 1.0


def test_split_specs_in_force_after_learn_and_after_save_load(tmp_path):
    config = small("Pendulum-v1", optimizer_roles="split")
    model = trained(config, {"actor": ACTOR, "critic": CRITIC})
    check_in_force(model)
    steps = model.policy.actor_optimizer.steps
    assert steps == 16 and model.policy.critic_optimizer.steps == 16

    model.save(tmp_path / "model.zip")
    env, _ = make_envs(config, seed=0)
    loaded = SuitePPO.load(tmp_path / "model.zip", env=env, device="cpu")
    check_in_force(loaded)
    assert loaded.policy.actor_optimizer.steps == steps
    for key, value in model.policy.actor_optimizer.inner.state_dict()["state"].items():
        loaded_value = loaded.policy.actor_optimizer.inner.state_dict()["state"][key]
        assert torch.equal(value["square_avg"], loaded_value["square_avg"])
    loaded.learn(128, reset_num_timesteps=False)
    check_in_force(loaded)
    assert loaded.policy.actor_optimizer.steps == steps + 8


def test_roles_follow_the_optimizer_roles_setting():
    from agents.ppo import roles

    assert roles(Config(optimizer_roles="shared")) == ("policy",)
    assert roles(Config(optimizer_roles="split")) == ("actor", "critic")
