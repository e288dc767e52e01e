"""Feature extractors the RL trainers need beyond stable-baselines3's own.

- :class:`MinAtarCNN`: the MinAtar network (Young & Tian 2019, "MinAtar", §4: one conv layer of
  16 3x3 filters, stride 1, then a fully connected layer of 128 units). SB3's NatureCNN needs
  at least 36x36 inputs; MinAtar frames are 10x10 with one channel per object type.
- :class:`MlpTrunk`: an MLP used as a *shared* trunk of PPO's actor and critic (the "shared
  network" of Schulman et al. 2017, §5 and Table 5 for Atari), to compare with separate ones.

``FEATURE_EXTRACTORS`` is the table a trainer's ``network`` setting picks from.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from torch import nn


class MinAtarCNN(BaseFeaturesExtractor):
    """Conv 16 x 3x3 (stride 1, no padding) -> ReLU -> FC ``features_dim`` -> ReLU.

    MinAtar observations are (10, 10, channels) booleans, channels last; they are permuted to
    channels first here (SB3 only transposes uint8 image spaces).

    :param observation_space: the (height, width, channels) Box of a MinAtar environment.
    :param features_dim: units of the fully connected layer (128 in MinAtar's DQN).
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 128):
        super().__init__(observation_space, features_dim)
        height, width, channels = observation_space.shape
        self.conv = nn.Sequential(nn.Conv2d(channels, 16, kernel_size=3, stride=1), nn.ReLU())
        flat = 16 * (height - 2) * (width - 2)
        self.linear = nn.Sequential(nn.Flatten(), nn.Linear(flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.conv(observations.permute(0, 3, 1, 2).float()))


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
    "mlp_trunk": MlpTrunk,
}
