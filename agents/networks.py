"""The RL trainers' networks beyond stable-baselines3's own, and the layer specs of every CNN.

- :class:`MinAtarCNN`: the MinAtar network (Young & Tian 2019, "MinAtar", §4: one conv layer of
  16 3x3 filters, stride 1, then a fully connected layer of 128 units). SB3's NatureCNN needs
  at least 36x36 inputs; MinAtar frames are 10x10 with one channel per object type.
- :class:`DopamineMinAtarCNN`: Dopamine's MinAtar DQN network (google/dopamine
  dopamine/labs/environments/minatar/minatar_env.py ``MinatarDQNNetwork``): one conv layer of
  16 3x3 filters, stride 1, SAME padding, ReLU, flattened straight into the linear Q head;
  Glorot/Xavier uniform weights and zero biases (flax's ``Conv``/``Dense`` with
  ``kernel_init=xavier_uniform()``).
- :class:`MlpTrunk`: an MLP used as a *shared* trunk of PPO's actor and critic (the "shared
  network" of Schulman et al. 2017, §5 and Table 5 for Atari), to compare with separate ones.

``FEATURE_EXTRACTORS`` is the table a trainer's ``network`` setting picks from; ``CONV_NETS``
holds each CNN's layers and initialization, which the lone extractors here and the seed stacks
(agents/stacked.py) both build from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from torch import nn

Init = Literal["torch", "xavier_uniform"]


@dataclass(frozen=True)
class ConvNet:
    """A CNN Q-network's layers: conv layers (each then ReLU), flatten, optionally a fully
    connected layer of ``features`` units (then ReLU); the head (``net_arch``, then one output
    per action) follows."""

    layers: tuple[tuple[int, int, int], ...]
    """(filters, kernel, stride) per conv layer."""
    features: int | None
    """units of the fully connected layer after flattening; None: the head takes the flattened
    conv output."""
    padding: Literal["valid", "same"] = "valid"
    """'same' (stride 1, odd kernels): kernel // 2 zeros on each side, the output keeps the
    input's height and width."""
    init: Init = "torch"
    """the initialization of every layer, the head's too (``init_bounds``)."""
    channels_last: bool = False
    """observations are (H, W, C) (MinAtar's frames), else (C, H, W)."""
    divisor: float = 1.0
    """observations are divided by it first (255: uint8 frames, as SB3's ``preprocess_obs``)."""

    def pad(self, kernel: int) -> int:
        return kernel // 2 if self.padding == "same" else 0

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(channels, height, width) after the conv layers, for one observation's ``shape``."""
        channels, height, width = (shape[2], *shape[:2]) if self.channels_last else tuple(shape)
        for filters, kernel, stride in self.layers:
            pad = self.pad(kernel)
            height = (height + 2 * pad - kernel) // stride + 1
            width = (width + 2 * pad - kernel) // stride + 1
            channels = filters
        return channels, height, width


CONV_NETS: dict[str, ConvNet] = {
    # agents/networks.py MinAtarCNN (Young & Tian 2019, §4).
    "minatar_cnn": ConvNet(((16, 3, 1),), features=128, channels_last=True),
    # SB3's NatureCNN: conv 32 8x8 s4, 64 4x4 s2, 64 3x3 s1, each then ReLU, flatten, Linear 512,
    # ReLU (Mnih et al. 2015, Methods, "Model architecture"); SB3's CnnPolicy divides by 255.
    "nature_cnn": ConvNet(((32, 8, 4), (64, 4, 2), (64, 3, 1)), features=512, divisor=255.0),
    # Dopamine's MinatarDQNNetwork (DopamineMinAtarCNN): no hidden layer, Xavier init.
    "dopamine_minatar": ConvNet(
        ((16, 3, 1),), features=None, padding="same", init="xavier_uniform", channels_last=True
    ),
}


def init_bounds(init: Init, fan_in: int, fan_out: int) -> tuple[float, float]:
    """(weight, bias) bounds b of a layer's U(-b, b) initialization; fans count the kernel's
    receptive field (in * k * k, out * k * k for a conv), as torch and jax do.

    - 'torch': nn.Linear's and nn.Conv2d's ``reset_parameters`` (kaiming_uniform with a =
      sqrt(5): 1/sqrt(fan_in), bias likewise), SB3's layers' initialization;
    - 'xavier_uniform': Glorot & Bengio 2010, eq. 16, sqrt(6 / (fan_in + fan_out)), bias 0
      (jax.nn.initializers.xavier_uniform, flax's zero ``bias_init``).
    """
    if init == "torch":
        bound = 1.0 / math.sqrt(fan_in)
        return bound, bound
    if init == "xavier_uniform":
        return math.sqrt(6.0 / (fan_in + fan_out)), 0.0
    raise ValueError(f"unknown initialization {init!r}; valid: 'torch', 'xavier_uniform'")


def fans(weight_shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a torch weight: (out, in) for Linear, (out, in, k, k) for Conv2d."""
    receptive = math.prod(weight_shape[2:])
    return weight_shape[1] * receptive, weight_shape[0] * receptive


@torch.no_grad()
def initialize(module: nn.Module, init: Init) -> nn.Module:
    """Every Linear and Conv2d of ``module`` drawn anew by ``init``'s law (``init_bounds``),
    from torch's global generator, layer by layer in module order."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            weight_bound, bias_bound = init_bounds(init, *fans(tuple(layer.weight.shape)))
            nn.init.uniform_(layer.weight, -weight_bound, weight_bound)
            if layer.bias is not None:
                if bias_bound == 0.0:
                    nn.init.zeros_(layer.bias)
                else:
                    nn.init.uniform_(layer.bias, -bias_bound, bias_bound)
    return module


class MinAtarCNN(BaseFeaturesExtractor):
    """Conv 16 x 3x3 (stride 1, no padding) -> ReLU -> FC ``features_dim`` -> ReLU
    (``CONV_NETS['minatar_cnn']``).

    MinAtar observations are (10, 10, channels) booleans, channels last; they are permuted to
    channels first here (SB3 only transposes uint8 image spaces).

    :param observation_space: the (height, width, channels) Box of a MinAtar environment.
    :param features_dim: units of the fully connected layer (128 in MinAtar's DQN).
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 128):
        super().__init__(observation_space, features_dim)
        spec = CONV_NETS["minatar_cnn"]
        ((filters, kernel, stride),) = spec.layers
        channels = observation_space.shape[2]
        self.conv = nn.Sequential(
            nn.Conv2d(channels, filters, kernel_size=kernel, stride=stride), nn.ReLU()
        )
        flat = math.prod(spec.output_shape(observation_space.shape))
        self.linear = nn.Sequential(nn.Flatten(), nn.Linear(flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.conv(observations.permute(0, 3, 1, 2).float()))


class DopamineMinAtarCNN(BaseFeaturesExtractor):
    """Conv 16 x 3x3 (stride 1, SAME padding) -> ReLU -> flatten (``CONV_NETS
    ['dopamine_minatar']``): 16 * 10 * 10 = 1,600 features, on which the Q head is one linear
    layer (``net_arch: []``). Weights Xavier uniform, biases zero; the head's too, which
    agents/dqn.py ``build`` initializes (SB3 builds the head outside the extractor).

    Dopamine's flax code flattens (H, W, 16), this (16, H, W): a permutation of the features,
    so the same law of initial networks.

    :param observation_space: the (height, width, channels) Box of a MinAtar environment.
    """

    def __init__(self, observation_space: gym.spaces.Box):
        spec = CONV_NETS["dopamine_minatar"]
        super().__init__(observation_space, math.prod(spec.output_shape(observation_space.shape)))
        ((filters, kernel, stride),) = spec.layers
        channels = observation_space.shape[2]
        conv = nn.Conv2d(channels, filters, kernel, stride=stride, padding=spec.pad(kernel))
        self.conv = nn.Sequential(conv, nn.ReLU(), nn.Flatten())
        initialize(self, spec.init)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.conv(observations.permute(0, 3, 1, 2).float())


class MlpTrunk(BaseFeaturesExtractor):
    """Flatten -> (Linear -> Tanh) per hidden size: a trunk the actor and critic heads share.

    :param observation_space: a Box observation space.
    :param hidden_sizes: the trunk's layer sizes; the last is the features dimension.
    """

    def __init__(self, observation_space: gym.spaces.Box, hidden_sizes: list[int] = (64, 64)):
        sizes = [int(torch.Size(observation_space.shape).numel()), *hidden_sizes]
        super().__init__(observation_space, sizes[-1])
        layers: list[nn.Module] = [nn.Flatten()]
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(fan_in, fan_out), nn.Tanh()]
        self.trunk = nn.Sequential(*layers)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.trunk(observations.float())


# network setting -> features extractor class (None: SB3's default for the policy, a Flatten).
FEATURE_EXTRACTORS: dict[str, type[BaseFeaturesExtractor] | None] = {
    "mlp": None,
    "nature_cnn": NatureCNN,
    "minatar_cnn": MinAtarCNN,
    "dopamine_minatar": DopamineMinAtarCNN,
    "mlp_trunk": MlpTrunk,
}
