"""Dopamine's MinAtar DQN network (agents/networks.py ``dopamine_minatar``; google/dopamine
dopamine/labs/environments/minatar/minatar_env.py MinatarDQNNetwork): conv 16 x 3x3, stride 1,
SAME padding, ReLU, flatten, linear head; Xavier uniform weights, zero biases. The lone (SB3)
Q-network and the stacked one: layer shapes and initialization worked out by hand, and seed i of
a stack computes what the lone network computes on the same weights."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import dqn, stacked
from agents.networks import CONV_NETS, DopamineMinAtarCNN, init_bounds, initialize
from suite.errors import ConfigError
from suite.optimizers import OptimizerSpec

pytestmark = pytest.mark.usefixtures("one_thread")

# MinAtar Breakout: 10x10 frames, 4 object channels; Dopamine plays all 6 actions.
SPACE = gym.spaces.Box(0, 1, (10, 10, 4), dtype=bool)
ACTIONS = 6
CONFIG = dqn.Config(network="dopamine_minatar", net_arch=[])
# By hand: Glorot & Bengio 2010, eq. 16, U(+-sqrt(6 / (fan_in + fan_out))), fans over the
# receptive field for the conv (jax's and torch's convention alike).
CONV_BOUND = math.sqrt(6 / (4 * 3 * 3 + 16 * 3 * 3))  # 0.18257
HEAD_BOUND = math.sqrt(6 / (16 * 10 * 10 + ACTIONS))  # 0.06112


def lone_q_net():
    """The lone trainer's Q-network (agents/dqn.py build: SB3's DQN with the extractor)."""
    pytest.importorskip("minatar")
    from agents.common import make_env

    env = make_env("MinAtar/Breakout-v1", 0, {"use_minimal_action_set": False})
    spec = OptimizerSpec("adam", 2.5e-4, kwargs={"eps": 3.125e-4})
    return dqn.build(CONFIG, {"q": spec}, env, seed=0, device="cpu")


def stack(seeds=(0, 1)) -> stacked.DqnStack:
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    return stacked.DqnStack(CONFIG, SPACE, gym.spaces.Discrete(ACTIONS), generators, "cpu")


def check_law(values: torch.Tensor, bound: float) -> None:
    """U(-bound, bound): inside the bounds, reaching near them, variance bound^2 / 3."""
    values = values.detach().flatten()
    assert values.abs().max() <= bound
    assert values.abs().max() > 0.98 * bound
    assert values.var().item() == pytest.approx(bound**2 / 3, rel=0.1)
    assert abs(values.mean().item()) < 0.05 * bound


def test_init_bounds_by_hand():
    # sqrt(6 / 180) and sqrt(6 / 1606).
    assert init_bounds("xavier_uniform", 36, 144) == (pytest.approx(0.182574, abs=1e-6), 0.0)
    assert init_bounds("xavier_uniform", 1600, 6) == (pytest.approx(0.0611237, abs=1e-6), 0.0)
    # torch's default: 1/sqrt(fan_in) for weight and bias (nn.Linear.reset_parameters).
    assert init_bounds("torch", 16, 3) == (0.25, 0.25)
    with pytest.raises(ValueError, match="valid: 'torch', 'xavier_uniform'"):
        init_bounds("orthogonal", 4, 4)


def test_initialize_matches_torchs_xavier_uniform_law():
    """``initialize`` draws torch's nn.init.xavier_uniform_ bounds for a conv and a linear."""
    for layer in (torch.nn.Conv2d(4, 16, 3), torch.nn.Linear(1600, 6)):
        fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(layer.weight)
        torch.manual_seed(0)
        initialize(layer, "xavier_uniform")
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert layer.weight.abs().max() <= bound and torch.all(layer.bias == 0)


def test_the_lone_q_network_is_dopamines_by_hand():
    model = lone_q_net()
    extractor, head = model.q_net.features_extractor, model.q_net.q_net
    assert isinstance(extractor, DopamineMinAtarCNN)
    (conv,) = [m for m in extractor.modules() if isinstance(m, torch.nn.Conv2d)]
    assert conv.weight.shape == (16, 4, 3, 3) and conv.bias.shape == (16,)
    assert conv.stride == (1, 1) and conv.padding == (1, 1)  # SAME for a 3x3 kernel
    assert extractor.features_dim == 16 * 10 * 10
    (linear,) = list(head)  # net_arch []: one linear layer, no hidden layer
    assert isinstance(linear, torch.nn.Linear)
    assert linear.weight.shape == (ACTIONS, 1600) and linear.bias.shape == (ACTIONS,)
    check_law(conv.weight, CONV_BOUND)
    check_law(linear.weight, HEAD_BOUND)
    assert torch.all(conv.bias == 0) and torch.all(linear.bias == 0)
    # The target network is the online one, the head's new initialization included.
    for online, target in zip(
        model.q_net.state_dict().values(), model.q_net_target.state_dict().values(), strict=True
    ):
        assert torch.equal(online, target)


def test_the_stacked_q_network_is_dopamines_by_hand():
    q = stack(seeds=(0, 1, 2))
    (conv_weight,), (conv_bias,) = q.conv.weights, q.conv.biases
    (head_weight,), (head_bias,) = q.q.weights, q.q.biases
    assert conv_weight.shape == (3, 16, 4, 3, 3) and conv_bias.shape == (3, 16)
    assert q.conv.features == 1600
    assert head_weight.shape == (3, 1, 1600, ACTIONS) and head_bias.shape == (3, 1, 1, ACTIONS)
    for i in range(3):
        check_law(conv_weight[i], CONV_BOUND)
        check_law(head_weight[i], HEAD_BOUND)
    assert torch.all(conv_bias == 0) and torch.all(head_bias == 0)
    # Each seed's own draws: seed 0 alone draws what seed 0 of the stack drew.
    alone = stack(seeds=(0,))
    assert torch.equal(alone.conv.weights[0][0], conv_weight[0])
    assert torch.equal(alone.q.weights[0][0], head_weight[0])


def test_same_padding_by_hand():
    """All-ones filters on an all-ones channel: a corner sees 2x2 of the frame, an edge 2x3, the
    inside 3x3 (zeros padded around the 10x10 frame)."""
    q = stack(seeds=(0,))
    with torch.no_grad():
        q.conv.weights[0].fill_(1.0)
    frames = torch.zeros(1, 1, 10, 10, 4, dtype=torch.bool)
    frames[..., 2] = True
    features = q.conv.forward(frames, q.conv.parameters()).reshape(16, 10, 10)
    assert features[:, 0, 0].tolist() == [4.0] * 16
    assert features[:, 0, 5].tolist() == [6.0] * 16
    assert features[:, 5, 5].tolist() == [9.0] * 16


def test_stacked_seed_computes_what_the_lone_network_does_on_its_weights():
    model = lone_q_net()
    q = stack(seeds=(3, 4))
    frames = torch.rand(2, 7, 10, 10, 4) > 0.7
    values = q.q_values(frames)
    for i in range(2):
        extractor, head = model.q_net.features_extractor, model.q_net.q_net[0]
        with torch.no_grad():
            extractor.conv[0].weight.copy_(q.conv.weights[0][i])
            extractor.conv[0].bias.copy_(q.conv.biases[0][i])
            head.weight.copy_(q.q.weights[0][i, 0].T)
            head.bias.copy_(q.q.biases[0][i, 0, 0])
            expected = model.q_net(frames[i].float())
        torch.testing.assert_close(values[i], expected, rtol=1e-5, atol=1e-6)


def test_the_stacked_dqn_trains_it_per_seed_as_a_stack_of_one():
    """A few TD steps on the same batches: seed 1 of a two-seed stack as seed 1 alone (the
    grouped SAME convolution keeps the seeds apart)."""
    from agents.replay import Replay

    both, alone = stack(seeds=(0, 1)), stack(seeds=(1,))
    spec = {"q": OptimizerSpec("adam", 2.5e-4, kwargs={"eps": 3.125e-4})}
    both_optimizers = stacked.build_optimizers(both, spec)
    alone_optimizers = stacked.build_optimizers(alone, spec)
    both_replay = Replay(2, 64, SPACE, (), torch.long, "cpu")
    alone_replay = Replay(1, 64, SPACE, (), torch.long, "cpu")
    rng = np.random.default_rng(0)
    for _ in range(40):
        obs, next_obs = rng.random((2, 2, 10, 10, 4)) > 0.7
        actions, rewards = rng.integers(0, ACTIONS, 2), rng.random(2).astype(np.float32)
        dones = (rng.random(2) < 0.1).astype(np.float32)
        both_replay.add(obs, actions, rewards, next_obs, dones)
        alone_replay.add(obs[1:], actions[1:], rewards[1:], next_obs[1:], dones[1:])
    index = torch.as_tensor(rng.integers(0, 40, (1, 32)))
    for _ in range(3):
        both._update(both_replay, both_optimizers, {"index": index.expand(2, -1)})
        alone._update(alone_replay, alone_optimizers, {"index": index})
    for got, want in zip(both.parameters(), alone.parameters(), strict=True):
        torch.testing.assert_close(got[1], want[0], rtol=1e-5, atol=1e-6)
    assert not torch.equal(both.q.weights[0][0], stack(seeds=(0,)).q.weights[0][0])


def test_dopamine_minatar_takes_minatar_frames_only():
    with pytest.raises(ConfigError, match="'dopamine_minatar' takes minatar frames"):
        dqn.Config(network="dopamine_minatar").validate()
    assert "dopamine_minatar" in stacked.DQN_NETWORKS
    assert CONV_NETS["dopamine_minatar"].output_shape((10, 10, 4)) == (16, 10, 10)
