"""SAC's roles (actor, critic, entropy): disjoint and covering; the entropy coefficient's optimizer
is the role's spec, not SB3's hard-coded Adam; each role's class, lr and schedule in force after
learn() and save/load; K-FAC on the critic and the actor takes finite steps."""

from __future__ import annotations

import pytest
import torch

from agents.common import make_env
from agents.sac import Config, SuiteSAC, build, roles
from suite.optimizers import OptimizerSpec, RoleOptimizer
from suite.optimizers.kfac import KFAC
from suite.schema import from_dict

KFAC_SPEC = {"optimizer": "kfac_adam", "lr": 3e-4, "kwargs": {"damping": 1e-2}}  # issue 17
CRITIC = {
    "optimizer": "rmsprop",
    "lr": 1e-3,
    "schedule": {"name": "exponential", "kwargs": {"gamma": 0.995}},
    "clip_grad_norm": 10.0,
}
ENTROPY = {"optimizer": "sgd", "lr": 2e-3}


def small(**settings) -> Config:
    return Config(
        learning_starts=100, buffer_size=2000, batch_size=32, net_arch=[32, 32], **settings
    )


def trained(specs: dict, config: Config | None = None, steps: int = 150) -> SuiteSAC:
    config = config or small()
    specs = {role: from_dict(OptimizerSpec, spec) for role, spec in specs.items()}
    model = build(config, specs, make_env(config.env_id, 0), seed=0, device="cpu")
    model.learn(steps)
    return model


def check_in_force(model: SuiteSAC, steps: int) -> None:
    optimizers = model.role_optimizers()
    assert set(optimizers) == {"actor", "critic", "entropy"}
    assert all(isinstance(o, RoleOptimizer) and o.steps == steps for o in optimizers.values())
    assert isinstance(model.actor.optimizer.inner, KFAC)
    assert type(model.critic.optimizer.inner).__name__ == "RMSprop"
    assert model.critic.optimizer.lr == pytest.approx(1e-3 * 0.995**steps)
    # Not SB3's Adam: the entropy coefficient's optimizer is the role's SGD.
    assert type(model.ent_coef_optimizer.inner).__name__ == "SGD"
    assert model.ent_coef_optimizer.lr == 2e-3
    assert model.ent_coef_optimizer.params[0] is model.log_ent_coef


def test_specs_in_force_after_learn_and_after_save_load(tmp_path):
    model = trained({"actor": KFAC_SPEC, "critic": CRITIC, "entropy": ENTROPY})
    check_in_force(model, steps=50)  # 150 steps, learning from step 100
    model.save(tmp_path / "model.zip")
    loaded = SuiteSAC.load(tmp_path / "model.zip", env=make_env("Pendulum-v1", 0), device="cpu")
    check_in_force(loaded, steps=50)
    assert torch.equal(loaded.log_ent_coef, model.log_ent_coef)
    state = model.actor.optimizer.inner.state_dict()["state"]
    loaded_state = loaded.actor.optimizer.inner.state_dict()["state"]
    assert any("kfac_A" in s for s in loaded_state.values())
    for key, value in state.items():
        if "kfac_A" in value:
            assert torch.equal(value["kfac_A"], loaded_state[key]["kfac_A"])
    loaded.learn(30, reset_num_timesteps=False)
    check_in_force(loaded, steps=80)


def test_kfac_on_critic_and_actor_takes_finite_steps():
    model = trained({"actor": KFAC_SPEC, "critic": KFAC_SPEC, "entropy": ENTROPY})
    for role in ("actor", "critic"):
        optimizer = model.role_optimizers()[role].inner
        layers = [layer.module for layer in optimizer._layers]
        assert layers and all(isinstance(m, torch.nn.Linear) for m in layers)
        # Preconditioned: factors were collected and inverted for every layer.
        for layer in layers:
            assert "kfac_A_inv" in optimizer.state[layer.weight]
    # The target critic is a separate module: K-FAC has no hooks on it.
    target = {id(m) for m in model.critic_target.modules()}
    assert not target & {id(layer.module) for layer in model.critic.optimizer.inner._layers}
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())


def test_roles_are_disjoint_and_cover_actor_critic_and_temperature():
    spec = {"optimizer": "adam", "lr": 3e-4}
    model = trained({"actor": spec, "critic": spec, "entropy": spec}, steps=1)
    sets = {r: {id(p) for p in params} for r, (_, params, _) in model.role_parameters().items()}
    assert not (sets["actor"] & sets["critic"] or sets["actor"] & sets["entropy"])
    expected = [*model.actor.parameters(), *model.critic.parameters(), model.log_ent_coef]
    assert set().union(*sets.values()) == {id(p) for p in expected}
    assert not {id(p) for p in model.critic_target.parameters()} & set().union(*sets.values())


def test_fixed_entropy_coefficient_has_no_entropy_role():
    assert roles(Config()) == ("actor", "critic", "entropy")
    assert roles(Config(ent_coef=0.1)) == ("actor", "critic")
    spec = {"optimizer": "adam", "lr": 3e-4}
    model = trained({"actor": spec, "critic": spec}, small(ent_coef=0.1), steps=110)
    assert model.ent_coef_optimizer is None and set(model.role_optimizers()) == {"actor", "critic"}
