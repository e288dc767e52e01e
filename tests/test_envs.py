"""The environment families: registration, the Atari preprocessing, MinAtar's time limit and
network, the settings recorded with a run, and per-arm task overrides."""

from __future__ import annotations

import pytest
import torch

from agents.common import make_env
from agents.envs import MINATAR_MAX_EPISODE_STEPS, AtariSettings, describe
from agents.networks import MinAtarCNN
from suite.errors import ConfigError


def test_minatar_is_registered_with_a_time_limit():
    pytest.importorskip("minatar")
    env = make_env("MinAtar/Breakout-v1", 0)
    info = describe(env)
    assert info["max_episode_steps"] == MINATAR_MAX_EPISODE_STEPS
    assert info["observation_shape"] == [10, 10, 4]
    assert env.action_space.n == 3  # v1: the minimal action set
    assert (
        describe(make_env("MinAtar/Breakout-v1", 0, max_episode_steps=50))["max_episode_steps"]
        == 50
    )


def test_minatar_action_set_and_sticky_actions_are_env_kwargs_and_recorded():
    """Dopamine's MinAtar runs play all 6 actions with MinAtar's own sticky actions (0.1): on a
    -v1 id, ``use_minimal_action_set: false``; ``describe`` records both, defaults included."""
    pytest.importorskip("minatar")
    full = make_env("MinAtar/Breakout-v1", 0, {"use_minimal_action_set": False})
    assert full.action_space.n == 6
    assert describe(full)["minatar"] == {
        "sticky_action_prob": 0.1,
        "action_set": [0, 1, 2, 3, 4, 5],
    }
    # Breakout's minimal set: no-op, left, right of MinAtar's n, l, u, r, d, f.
    minimal = describe(make_env("MinAtar/Breakout-v1", 0, {"sticky_action_prob": 0.0}))
    assert minimal["minatar"] == {"sticky_action_prob": 0.0, "action_set": [0, 1, 3]}
    assert minimal["make_kwargs"]["sticky_action_prob"] == 0.0


def test_an_unknown_minatar_env_kwarg_is_a_config_error_before_any_run():
    pytest.importorskip("minatar")
    from agents import dqn

    config = dqn.Config(env_id="MinAtar/Breakout-v1", env_kwargs={"sticky_actions": 0.1})
    for attempt in (config.validate, lambda: make_env(config.env_id, 0, config.env_kwargs)):
        with pytest.raises(ConfigError, match="MinAtar takes no env_kwargs 'sticky_actions'") as e:
            attempt()
        assert (
            "sticky_action_prob" in str(e.value) and e.value.key == "task.env_kwargs.sticky_actions"
        )


def test_minatar_cnn_is_conv16_then_fc128():
    pytest.importorskip("minatar")
    env = make_env("MinAtar/Breakout-v1", 0)
    network = MinAtarCNN(env.observation_space)
    obs = torch.as_tensor(env.reset(seed=0)[0]).unsqueeze(0)
    assert network(obs).shape == (1, 128)
    assert network.conv[0].out_channels == 16 and network.conv[0].kernel_size == (3, 3)
    assert network.linear[1].in_features == 16 * 8 * 8


@pytest.mark.parametrize(
    ("env_id", "skips_in_wrapper", "sticky"),
    [("ALE/Breakout-v5", False, 0.25), ("BreakoutNoFrameskip-v4", True, 0.0)],
)
def test_atari_preprocessing(env_id, skips_in_wrapper, sticky):
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    env = make_env(env_id, 0, atari=AtariSettings(noop_max=5))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype.name == "uint8"
    info = describe(env, AtariSettings(noop_max=5))
    wrappers = info["wrappers"]
    # ALE v5 skips 4 frames itself; the wrapper adds its max-pooled skip only for NoFrameskip.
    assert ("MaxAndSkipEnv" in wrappers) == skips_in_wrapper
    assert info["make_kwargs"]["repeat_action_probability"] == sticky
    assert info["atari"]["noop_max"] == 5
    # The Monitor scores whole games with raw rewards: it sits inside the preprocessing.
    assert wrappers.index("Monitor") > wrappers.index("ClipRewardEnv")
    assert wrappers.index("Monitor") > wrappers.index("EpisodicLifeEnv")


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "Hopper-v5", "LunarLander-v3", "Acrobot-v1"])
def test_other_families_make(env_id):
    if env_id.endswith("-v5"):
        pytest.importorskip("mujoco")
    if env_id.startswith("LunarLander"):
        pytest.importorskip("Box2D")
    env = make_env(env_id, 0)
    env.reset(seed=0)
    assert describe(env)["env_id"] == env_id


def test_unknown_environment_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown environment"):
        make_env("NoSuchEnv-v0", 0)


def test_arm_overrides_moved_to_the_arms_own_task():
    # Issue 12: settings that differ by arm are the arm's `task:` mapping (suite/config.py,
    # tested in tests/test_synthetic.py); the trainers' own arm_overrides must stay empty.
    from agents import dqn, ppo, sac

    for module in (dqn, ppo, sac):
        module.Config().validate()
        with pytest.raises(ValueError, match=r"arm_overrides moved.*arms\.a\.task"):
            module.Config(arm_overrides={"a": {"gamma": 0.9}}).validate()
